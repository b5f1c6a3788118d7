"""The paper's table: pipelines/paper.yaml's workflows through pilot, batch and packed batch on the same resources.

    .venv/bin/python benchmarks/paper.py [--profile full|small] [--runs 3] [--out /tmp/deeprc-paper]
        [--workflows forecasting,hydrology,whole] [--runners pilot,batch,batch-packed]
        [--runners launch-pilot,launch-batch --site local-slurm]   # through a scheduler

Workflows: `forecasting` (the forecasting preparations, every forecasting model, evaluation),
`hydrology` (the basins' preparation, every hydrology model, evaluation) and `whole` (the full
DAG), each cut from the same spec. Every run is a fresh `deeprc-deploy run --no-resume` process
(pilot_vs_batch.one_run: the pilot pays its start-up inside the measured time); `launch-pilot` and
`launch-batch` submit the workflow with `deeprc-deploy launch --site SITE --mode pilot|batch` (one pilot
job, or one job per stage chained by dependencies) and time it from the submit to the last stage done
(pilot_vs_batch.one_launch); runners are
interleaved per run so load drift hits them alike. Printed: median end-to-end seconds per workflow
and runner, seconds and percent the pilot saves against batch and packed batch, the runtime's own
overhead (wall time not covered by stage code), and the per-stage breakdown of the whole workflow.
Writes results.json, results.md (the table for docs/results.md) and results.png.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pilot_vs_batch import ROOT, analyse, one_launch, one_run  # noqa: E402

from deeprc.pipeline.pilot import usable_cores  # noqa: E402

RUNNERS = ("pilot", "batch", "batch-packed", "launch-pilot", "launch-batch")  # launch-*: through `launch --site SITE`
PAIRS = (("pilot", "batch"), ("pilot", "batch-packed"), ("launch-pilot", "launch-batch"))  # (pilot, its baseline)
WORKFLOWS = {"forecasting": (":prepare_forecast", ":train_forecast"),
             "hydrology": (":prepare_hydrology", ":train_hydrology")}


def cut(spec: dict, workflow: str) -> dict:
    """The spec restricted to one workflow's stages (evaluation kept, its dependencies trimmed)."""
    if workflow == "whole":
        return spec
    ends = WORKFLOWS[workflow]
    keep = {s["name"] for s in spec["stages"] if str(s.get("function", "")).endswith(ends)}
    stages = []
    for s in spec["stages"]:
        deps = [d for d in s.get("depends_on", []) if d in keep]
        if s["name"] in keep or (s.get("depends_on") and deps):
            stages.append(dict(s, depends_on=deps))
    names = {s["name"] for s in stages}
    profiles = {p: {n: v for n, v in over.items() if n in names} for p, over in (spec.get("profiles") or {}).items()}
    return dict(spec, name=f"{spec['name']}-{workflow}", stages=stages, profiles=profiles)


def write_specs(pipeline: Path, workflows: list[str], out: Path) -> dict[str, Path]:
    spec = yaml.safe_load(pipeline.read_text())  # anchors resolved
    spec = {k: v for k, v in spec.items() if not str(k).startswith("x-")}
    paths = {}
    for wf in workflows:
        paths[wf] = out / f"{pipeline.stem}-{wf}.yaml"
        paths[wf].write_text(yaml.safe_dump(cut(spec, wf), sort_keys=False))
    return paths


def summarise(runs: list[dict]) -> dict:
    names = list(runs[0]["stages"])
    return {"walls_s": [m["wall_s"] for m in runs],
            "median_wall_s": statistics.median(m["wall_s"] for m in runs),
            "median_overhead_s": statistics.median(m["overhead_s"] for m in runs),
            "median_code_s": statistics.median(m["code_union_s"] for m in runs),
            "stage_span_s": {n: statistics.median(m["stages"][n]["span_s"] for m in runs if n in m["stages"])
                             for n in names},
            "stage_code_s": {n: statistics.median(m["stages"][n]["code_s"] or 0 for m in runs if n in m["stages"])
                             for n in names}}


def table(res: dict) -> list[str]:
    runners = [r for r in RUNNERS if any(r in res["summary"][wf] for wf in res["summary"])]
    head = "| workflow | runs | " + " | ".join(f"{r} s" for r in runners)
    rule = "|---|---|" + "---|" * len(runners)
    pairs = [(a, b) for a, b in PAIRS if a in runners and b in runners]
    for a, b in pairs:
        head += f" | {a} saves vs {b} s (%)"
        rule += "---|"
    head += " | " + " | ".join(f"{r} overhead s" for r in runners) + " |"
    rule += "---|" * len(runners)
    lines = [head, rule]
    for wf, per in res["summary"].items():
        cells = [f"{per[r]['median_wall_s']:.1f}" for r in runners]
        for a, b in pairs:
            saved = per[b]["median_wall_s"] - per[a]["median_wall_s"]
            cells.append(f"{saved:.1f} ({100 * saved / per[b]['median_wall_s']:.0f}%)")
        cells += [f"{per[r]['median_overhead_s']:.1f}" for r in runners]
        lines.append(f"| {wf} | {len(per[runners[0]]['walls_s'])} | " + " | ".join(cells) + " |")
    for stage_wf in ["whole"] if "whole" in res["summary"] else list(res["summary"]):
        per = res["summary"][stage_wf]
        lines += ["", f"Per stage ({stage_wf}; median seconds, queued -> finished / in stage code):", "",
                  "| stage | " + " | ".join(f"{r} span | {r} code" for r in runners) + " |",
                  "|---|" + "---|---|" * len(runners)]
        for n in per[runners[0]]["stage_span_s"]:
            cells = []
            for r in runners:
                cells += [f"{per[r]['stage_span_s'].get(n, 0):.1f}", f"{per[r]['stage_code_s'].get(n, 0):.1f}"]
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return lines


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wfs = list(res["summary"])
    runners = [r for r in RUNNERS if r in res["summary"][wfs[0]]]
    fig, ax = plt.subplots(figsize=(3 + 2.5 * len(wfs), 4.5))
    w = 0.8 / len(runners)
    for k, r in enumerate(runners):
        xs = [i + k * w for i in range(len(wfs))]
        ax.bar(xs, [res["summary"][wf][r]["median_wall_s"] for wf in wfs], w, label=r)
        ax.bar(xs, [res["summary"][wf][r]["median_overhead_s"] for wf in wfs], w, color="black", alpha=0.3,
               label="runtime overhead" if k == 0 else None)
    ax.set_xticks([i + w * (len(runners) - 1) / 2 for i in range(len(wfs))], wfs)
    ax.set_ylabel("end to end, median seconds")
    ax.set_title(f"{res['pipeline']} ({res['profile']}), {res['rounds_done']} run(s), {res['cores']} cores")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipeline", default=str(ROOT / "pipelines" / "paper.yaml"))
    ap.add_argument("--profile", default="full")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default="/tmp/deeprc-paper")
    ap.add_argument("--workflows", default="forecasting,hydrology,whole")
    ap.add_argument("--runners", default="pilot,batch,batch-packed",
                    help=f"any of {','.join(RUNNERS)}; launch-* need --site")
    ap.add_argument("--site", default=None, help="site for the launch-* runners, e.g. local-slurm or emulated-cluster")
    ap.add_argument("--reanalyse", action="store_true",
                    help="recompute the tables from OUT's run folders and results.json (keeps each run's wall time)")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    if args.reanalyse:
        res = json.loads((out / "results.json").read_text())
        for wf, per in res["raw"].items():
            for r, ms in per.items():
                per[r] = [{**analyse(out / f"{wf}-{r}-{i}", m["wall_s"]), "load1": m["load1"]} for i, m in enumerate(ms)]
        report(res, out, res["rounds_done"])
        return
    out.mkdir(parents=True, exist_ok=True)
    workflows = [w for w in args.workflows.split(",") if w]
    runners = [r for r in args.runners.split(",") if r]
    bad = [w for w in workflows if w != "whole" and w not in WORKFLOWS] + [r for r in runners if r not in RUNNERS]
    if any(r.startswith("launch-") for r in runners) and not args.site:
        bad.append("launch-* without --site")
    if bad:
        raise SystemExit(f"unknown workflow/runner {', '.join(bad)}: use {', '.join([*WORKFLOWS, 'whole'])} "
                         f"and {', '.join(RUNNERS)}")
    specs = write_specs(Path(args.pipeline), workflows, out)
    cores = usable_cores()
    res: dict = {"pipeline": Path(args.pipeline).name, "profile": args.profile, "runs": args.runs, "cores": cores,
                 "started": time.strftime("%Y-%m-%d %H:%M:%S"), "raw": {}, "summary": {}}
    for i in range(args.runs):
        for wf in workflows:
            for r in runners:
                print(f"run {i + 1}/{args.runs}: {wf} / {r} ...", flush=True)
                load_before = os.getloadavg()[0]
                run_dir = out / f"{wf}-{r}-{i}"
                if r.startswith("launch-"):
                    m = one_launch(str(specs[wf]), args.profile, args.site, r.removeprefix("launch-"), run_dir)
                    if m is None:
                        raise SystemExit(f"{r} run of {wf} failed (see {run_dir})")
                else:
                    m = one_run(str(specs[wf]), args.profile, r, run_dir)  # pilot_vs_batch.VARIANTS[r]
                m["load1"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
                res["raw"].setdefault(wf, {}).setdefault(r, []).append(m)
                print(f"  {m['wall_s']:.1f} s end to end, overhead {m['overhead_s']:.1f} s, "
                      f"load {m['load1'][0]:.1f} -> {m['load1'][1]:.1f}", flush=True)
            report(res, out, i + 1)  # after every workflow's runners: an interrupted benchmark keeps what finished


def report(res: dict, out: Path, rounds: int) -> None:
    """Write results.json, results.md and results.png for the rounds done so far (and print the table)."""
    res["rounds_done"] = rounds
    res["summary"] = {wf: {r: summarise(ms) for r, ms in per.items()} for wf, per in res["raw"].items()}
    loads = [x for per in res["raw"].values() for ms in per.values() for m in ms for x in m["load1"]]
    (out / "results.json").write_text(json.dumps(res, indent=2))
    plot(res, out / "results.png")
    lines = [f"# {res['pipeline']} ({res['profile']}): pilot vs batch, up to {rounds} run(s) each, median, "
             f"{res['cores']} cores ({os.uname().nodename}); 1-minute load average {min(loads):.1f}-{max(loads):.1f}",
             "", *table(res)]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwrote {out / 'results.json'}, {out / 'results.md'}, {out / 'results.png'}", flush=True)

if __name__ == "__main__":
    main()
