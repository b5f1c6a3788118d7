"""Pilot vs batch: the same pipeline through both runners on the same resources.

    .venv/bin/python benchmarks/pilot_vs_batch.py [--pipeline pipelines/demo.yaml] [--profile small]
        [--runs 3] [--tasks 200] [--out /tmp/deeprc-bench] [--slurm]

Each run is a fresh `deeprc-deploy run --no-resume` process (the pilot runner pays its pilot
start-up inside the measured time; `pilot-warm` runs go to one warm pilot, `deeprc-deploy pilot start`,
started before them and not counted). Baselines: `batch`, one stage at a time (jobs chained by hand or
with afterok), and `batch-packed`, independent stages side by side within the usable cores (as a
scheduler packs jobs). Reported: medians of the end-to-end wall time per runner and the ratios
(target pilot/batch <= 0.7), a per-stage breakdown (queued -> finished, and the time in
stage code), the runtime's own overhead (wall time not covered by any stage's code), and the
dispatch latency of tiny function tasks on warm raptor workers (target median <= 50 ms). With
--slurm the same comparison runs through `deeprc-deploy launch --site local-slurm --mode pilot|batch`
(needs the local Slurm of tests/infra/slurm.sh running), timed from submission to the last stage done; with
--site SITE (repeatable) the same through any site, e.g. `--site emulated-cluster --profile wide --runners none`
for the 2-node cluster of tests/infra/cluster.sh. Writes results.json, results.md and results.png.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from deeprc.pipeline.pilot import usable_cores

ROOT = Path(__file__).resolve().parents[1]


def union_length(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def analyse(run_dir: Path, wall: float, t0: float | None = None) -> dict:
    """Per-stage times from the run folder: span (queued->finished) and code time; runtime overhead;
    `first_code_s`: from the command's start (`t0`) to the first stage code running."""
    from deeprc.pipeline.report import task_spans
    from deeprc.pipeline.runfolder import RunFolder, read_json

    spans = {s["stage"]: s for s in task_spans(RunFolder(run_dir).timeline()) if s.get("ok")}
    stages, code = {}, []
    for name, sp in spans.items():
        done = read_json(run_dir / "stages" / name / "_done.json", {}) or {}
        c0, c1 = done.get("code_started"), done.get("code_finished")
        stages[name] = {"span_s": sp["ended"] - sp["queued"], "code_s": (c1 - c0) if c0 and c1 else None}
        if c0 and c1:
            code.append((c0, c1))
    covered = union_length(code)
    first = min((a for a, _ in code), default=None)
    return {"wall_s": wall, "stages": stages, "code_union_s": covered, "overhead_s": wall - covered,
            "first_code_s": (first - t0) if first and t0 else None}


# benchmark runner name -> (deeprc runner, extra arguments, extra environment)
VARIANTS: dict[str, tuple[str, list[str], dict[str, str]]] = {
    "pilot": ("pilot", [], {}),  # a cold pilot of its own; eligible stages start on the launcher meanwhile
    "pilot-serial": ("pilot", [], {"DEEPRC_PILOT_OVERLAP": "0"}),  # a cold pilot, every stage waits for it
    "pilot-warm": ("pilot", ["--pilot", "bench"], {}),  # a warm pilot started once before the runs
    "batch": ("batch", [], {}),
    "batch-packed": ("batch", ["--cores", str(usable_cores())], {}),
}


def one_run(pipeline: str, profile: str, variant: str, run_dir: Path) -> dict:
    runner, extra, env = VARIANTS[variant]
    cmd = [sys.executable, "-m", "deeprc.cli", "run", pipeline, "--runner", runner, "--profile", profile,
           "--run-dir", str(run_dir), "--no-resume", *extra]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env})
    wall = time.time() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{variant} run failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return analyse(run_dir, wall, t0)


def warm_pilot(out: Path) -> dict:
    """Start the warm pilot `bench` (pilots folder under `out`) for the pilot-warm runs; its start-up time."""
    os.environ["DEEPRC_PILOTS_DIR"] = str(out / "pilots")
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "deeprc.cli", "pilot", "start", "--name", "bench", "--idle-timeout", "0"],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"warm pilot did not start:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return {"start_s": time.time() - t0}


def idle_cpu(seconds: float = 30.0) -> dict:
    """CPU time the idle warm pilot `bench` (its daemon and every process under its folder) used over `seconds`."""
    import psutil

    from deeprc.rp.reaping import own_pids
    from deeprc.pipeline.warm import folder_of, read_state

    def procs() -> list:
        pids = {int(read_state("bench")["pid"]), *own_pids(folder_of("bench"))}
        found = []
        for pid in pids:
            try:
                p = psutil.Process(pid)
                found += [p, *p.children(recursive=True)]
            except psutil.Error:
                pass
        return list({p.pid: p for p in found}.values())

    def total(ps: list) -> float:
        t = 0.0
        for p in ps:
            try:
                c = p.cpu_times()
                t += c.user + c.system
            except psutil.Error:
                pass
        return t

    ps = procs()
    c0, t0 = total(ps), time.time()
    time.sleep(seconds)
    used = total(ps) - c0
    return {"seconds": time.time() - t0, "cpu_s": used, "core_fraction": used / (time.time() - t0), "processes": len(ps)}


def stop_warm() -> None:
    subprocess.run([sys.executable, "-m", "deeprc.cli", "pilot", "stop", "bench"], capture_output=True, text=True, cwd=ROOT)


def dispatch_latency(n: int, base: Path) -> dict:
    """Round-trip latency (submit -> DONE callback) of tiny function tasks, one at a time, on warm workers."""
    import radical.pilot as rp

    from deeprc.rp.session import Pilot

    pilot = Pilot(cores=4, worker_ranks=2, base=base).start()
    done = threading.Event()
    final: dict[str, str] = {}

    def on_state(task, state) -> None:
        if state in rp.FINAL:
            final[task.uid] = state
            done.set()

    pilot.listeners.append(on_state)

    def one(i: int) -> float:
        done.clear()
        td = rp.TaskDescription({"mode": rp.TASK_FUNCTION, "ranks": 1, "raptor_id": pilot.master.uid,
                                 "function": rp.PythonTask(abs, args=(-i,), kwargs={})})
        t0 = time.perf_counter()
        task = pilot.tmgr.submit_tasks(td)
        end = time.time() + 300
        while task.uid not in final:  # other tasks (the pilot's probe) end too
            if not done.wait(max(0.0, end - time.time())):
                raise SystemExit("a tiny task did not finish in 300 s")
            done.clear()
        elapsed = time.perf_counter() - t0
        if final.get(task.uid) != rp.DONE or task.return_value not in (i, [i]):  # MPI workers: one per rank
            raise SystemExit(f"tiny task {task.uid} ended {final.get(task.uid)} with {task.return_value!r} "
                             f"(expected DONE and {i}): {task.exception or task.stderr}")
        return elapsed

    try:
        t0 = time.time()
        for i in range(3):  # warm-up: the worker starts and imports
            one(i)
        warm_s = time.time() - t0
        lat = [one(i) for i in range(n)]
        # throughput: n tasks at once
        tds = [rp.TaskDescription({"mode": rp.TASK_FUNCTION, "ranks": 1, "raptor_id": pilot.master.uid,
                                   "function": rp.PythonTask(abs, args=(-i,), kwargs={})}) for i in range(n)]
        t0 = time.perf_counter()
        tasks = pilot.tmgr.submit_tasks(tds)
        pilot.tmgr.wait_tasks([t.uid for t in tasks])
        bulk = time.perf_counter() - t0
        failed = [t.uid for t in tasks if t.state != rp.DONE]
        if failed:
            raise SystemExit(f"{len(failed)} of {n} bulk tiny tasks did not end DONE, e.g. {failed[0]}")
    finally:
        pilot.close()
    lat.sort()
    return {"tasks": n, "median_ms": 1000 * statistics.median(lat), "p90_ms": 1000 * lat[int(0.9 * (n - 1))],
            "min_ms": 1000 * lat[0], "bulk_tasks_per_s": n / bulk, "pilot_start_s": pilot.started_s,
            "warmup_s": warm_s}


def _wait_run(run_dir: Path, stages: int, timeout: float = 1800) -> bool:
    """Poll RUN/status.json until every stage is done (True), one failed, every job of the launch ended
    with stages left (a job that failed to start writes no status), or `timeout` (False; each says why)."""
    from deeprc.launch.follow import job_states
    from deeprc.launch.submit import read_record
    from deeprc.pipeline.runfolder import read_json

    end, checked = time.time() + timeout, 0.0
    while time.time() < end:
        st = (read_json(run_dir / "status.json", {}) or {}).get("stages", {})
        states = [s.get("state") for s in st.values()]
        if len(states) == stages and all(s in ("done", "cached") for s in states):
            return True
        if any(s in ("failed", "canceled") for s in states):
            print(f"{run_dir}: a stage failed: {st}")
            return False
        if time.time() - checked > 10:  # the scheduler's view, every 10 s
            checked = time.time()
            record = read_record(run_dir) or {}
            jobs = job_states(record) if record.get("jobs") else {}
            if jobs and all(v in ("done", "failed", "cancelled", "unknown") for v in jobs.values()):  # unknown: purged
                time.sleep(2)  # the last job's status.json write
                st = (read_json(run_dir / "status.json", {}) or {}).get("stages", {})
                if not (len(st) == stages and all(s.get("state") in ("done", "cached") for s in st.values())):
                    print(f"{run_dir}: every job ended ({jobs}) with stages not done ({st or 'no status.json'}); "
                          "see the job logs in its launch/ folder")
                    return False
        time.sleep(1)
    print(f"{run_dir}: stages not all done after {timeout:.0f} s")
    return False


def one_launch(pipeline: str, profile: str, site: str, mode: str, run_dir: Path, timeout: float = 3600) -> dict | None:
    """`deeprc-deploy launch --site SITE --mode MODE`, timed from the submit to the last stage done (None: it failed)."""
    from deeprc.pipeline.spec import load_pipeline

    n = len(load_pipeline(pipeline, profile).stages)
    t0 = time.time()
    p = subprocess.run([sys.executable, "-m", "deeprc.cli", "launch", pipeline, "--site", site,
                        "--mode", mode, "--profile", profile, "--run-dir", str(run_dir)],
                       capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0 or not _wait_run(run_dir, n, timeout):
        print(f"{site} {mode} run failed: {p.stdout[-1500:]}{p.stderr[-1500:]} (see {run_dir})")
        return None
    return analyse(run_dir, time.time() - t0, t0)


def slurm_runs(pipeline: str, profile: str, runs: int, out: Path, site: str = "local-slurm") -> dict | None:
    """`deeprc-deploy launch --site SITE --mode pilot|batch`: submit to time of the last stage done."""
    probe = subprocess.run([sys.executable, "-m", "deeprc.cli", "launch", "--help"], capture_output=True, text=True, cwd=ROOT)
    if probe.returncode != 0 or "--mode" not in probe.stdout:
        print("slurm: `deeprc-deploy launch` is not available; skipped")
        return None
    res: dict = {mode: {"walls": []} for mode in ("pilot", "batch")}
    for i in range(runs):
        for mode in ("pilot", "batch"):  # interleaved, so machine-load drift hits both modes alike
            m = one_launch(pipeline, profile, site, mode, out / f"{Path(site).stem}-{mode}-{i}")  # a site may be a YAML path
            if m is None:
                return None
            res[mode]["walls"].append(m["wall_s"])
            print(f"  {site} {mode}: {res[mode]['walls'][-1]:.1f} s", flush=True)
    for mode in ("pilot", "batch"):
        res[mode]["median_s"] = statistics.median(res[mode]["walls"])
    res["ratio"] = res["pilot"]["median_s"] / res["batch"]["median_s"]
    return res


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    runners = [r for r in VARIANTS if r in res["runs"]]
    meds = [res["summary"][r]["median_wall_s"] for r in runners]
    over = [res["summary"][r]["median_overhead_s"] for r in runners]
    axes[0].bar(runners, meds, color=["tab:blue", "tab:purple", "tab:orange", "tab:green", "tab:red"][: len(runners)],
                label="end to end")
    axes[0].bar(runners, over, color="black", alpha=0.35, label="runtime overhead")
    axes[0].set_ylabel("seconds (median)")
    axes[0].set_title(f"end to end, ratio pilot/batch = {res['summary'].get('ratio', float('nan')):.2f}")
    axes[0].legend()
    stages = list(res["summary"][runners[0]]["stage_span_s"]) if runners else []
    x = range(len(stages))
    w = 0.8 / max(1, len(runners))
    for k, r in enumerate(runners):
        axes[1].bar([i + k * w for i in x], [res["summary"][r]["stage_span_s"].get(s, 0) for s in stages], w, label=r)
    axes[1].set_xticks([i + w * (len(runners) - 1) / 2 for i in x], stages, rotation=45, ha="right", fontsize=8)
    axes[1].set_title("per stage: queued -> finished (median s)")
    axes[1].legend()
    lat = res.get("dispatch")
    if lat:
        axes[2].bar(["median", "p90", "min"], [lat["median_ms"], lat["p90_ms"], lat["min_ms"]])
        axes[2].axhline(50, color="red", ls="--", label="target 50 ms")
        axes[2].set_title(f"tiny task round trip on warm workers ({lat['tasks']} tasks)")
        axes[2].set_ylabel("ms")
        axes[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipeline", default=str(ROOT / "pipelines" / "demo.yaml"))
    ap.add_argument("--profile", default="small")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tasks", type=int, default=200, help="tiny tasks for the dispatch latency (0: skip)")
    ap.add_argument("--out", default="/tmp/deeprc-bench")
    ap.add_argument("--runners", default="pilot,batch,batch-packed",
                    help="pilot (a cold pilot; stages start on the launcher while it boots), pilot-serial (a cold "
                         "pilot, DEEPRC_PILOT_OVERLAP=0), pilot-warm (`run --pilot` on a warm pilot started once "
                         "before the runs; then its idle CPU over 30 s), batch (one stage at a time), batch-packed (independent "
                         "stages side by side within the usable cores, as a scheduler packs jobs); none: only "
                         "--slurm / latency")
    ap.add_argument("--slurm", action="store_true", help="also compare through `launch --site local-slurm`")
    ap.add_argument("--site", action="append", default=[],
                    help="also compare through `launch --site SITE` (repeatable), e.g. emulated-cluster: the 2-node "
                         "Slurm of tests/infra/cluster.sh (use --profile wide for stages wider than one node)")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    res: dict = {"pipeline": args.pipeline, "profile": args.profile, "runs": {}, "summary": {},
                 "cpus": os.cpu_count(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    runners = [r for r in args.runners.split(",") if r not in ("", "none")]  # none: only --slurm / latency
    unknown = [r for r in runners if r not in VARIANTS]
    if unknown:
        raise SystemExit(f"--runners: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)} or none")
    if "pilot-warm" in runners:
        res["warm"] = warm_pilot(out)
        print(f"warm pilot started in {res['warm']['start_s']:.1f} s", flush=True)
    try:
        run_all(args, runners, res, out)
        if "pilot-warm" in runners:
            print("idle CPU of the warm pilot over 30 s ...", flush=True)
            res["warm"]["idle"] = idle_cpu(30.0)
    finally:
        if "pilot-warm" in runners:
            stop_warm()
    write_results(args, runners, res, out)


def run_all(args: argparse.Namespace, runners: list[str], res: dict, out: Path) -> None:
    for i in range(args.runs):
        for r in runners:  # interleaved, so machine-load drift hits both runners alike
            print(f"run {i + 1}/{args.runs}: {r} ...", flush=True)
            m = one_run(args.pipeline, args.profile, r, out / f"{r}-{i}")
            res["runs"].setdefault(r, []).append(m)
            print(f"  {r}: {m['wall_s']:.1f} s end to end, first stage code at {m['first_code_s'] or 0:.1f} s, "
                  f"overhead {m['overhead_s']:.1f} s", flush=True)
    for r, ms in res["runs"].items():
        names = list(ms[0]["stages"])
        res["summary"][r] = {
            "walls_s": [m["wall_s"] for m in ms],
            "median_wall_s": statistics.median(m["wall_s"] for m in ms),
            "median_overhead_s": statistics.median(m["overhead_s"] for m in ms),
            "median_first_code_s": statistics.median(m["first_code_s"] or 0 for m in ms),
            "stage_span_s": {n: statistics.median(m["stages"][n]["span_s"] for m in ms if n in m["stages"]) for n in names},
            "stage_code_s": {n: statistics.median(m["stages"][n]["code_s"] or 0 for m in ms if n in m["stages"]) for n in names},
        }


def write_results(args: argparse.Namespace, runners: list[str], res: dict, out: Path) -> None:
    for base in ("batch", "batch-packed"):
        if "pilot" in res["summary"] and base in res["summary"]:
            key = "ratio" if base == "batch" else "ratio_packed"
            res["summary"][key] = res["summary"]["pilot"]["median_wall_s"] / res["summary"][base]["median_wall_s"]
    if args.tasks:
        print(f"dispatch latency: {args.tasks} tiny function tasks ...", flush=True)
        res["dispatch"] = dispatch_latency(args.tasks, out / "latency")
    sites = (["local-slurm"] if args.slurm else []) + [s for s in args.site if s != "local-slurm" or not args.slurm]
    res["sites"] = {site: slurm_runs(args.pipeline, args.profile, args.runs, out, site) for site in sites}
    res["slurm"] = res["sites"].get("local-slurm")
    (out / "results.json").write_text(json.dumps(res, indent=2))
    plot(res, out / "results.png")
    lines = [f"# pilot vs batch: {Path(args.pipeline).name} ({args.profile}), {args.runs} runs each, {os.cpu_count()} cores", ""]
    for r in [r for r in runners if r in res["summary"]]:
        s = res["summary"][r]
        lines.append(f"- {r}: median {s['median_wall_s']:.1f} s end to end (runs {', '.join(f'{w:.1f}' for w in s['walls_s'])}), "
                     f"first stage code at {s['median_first_code_s']:.1f} s, runtime overhead {s['median_overhead_s']:.1f} s")
    if "ratio" in res["summary"]:
        lines.append(f"- ratio pilot/batch: {res['summary']['ratio']:.2f} (target <= 0.7)")
    if "ratio_packed" in res["summary"]:
        lines.append(f"- ratio pilot/batch-packed: {res['summary']['ratio_packed']:.2f} (a stricter baseline: "
                     "independent stage jobs side by side, as Slurm runs them)")
    if "pilot-warm" in res["summary"] and "batch" in res["summary"]:
        res["summary"]["ratio_warm"] = res["summary"]["pilot-warm"]["median_wall_s"] / res["summary"]["batch"]["median_wall_s"]
        lines.append(f"- ratio pilot-warm/batch: {res['summary']['ratio_warm']:.2f} (target <= 0.5; the warm pilot "
                     f"started once in {res['warm']['start_s']:.1f} s, not counted)")
    if res.get("warm", {}).get("idle"):
        w = res["warm"]["idle"]
        lines.append(f"- idle warm pilot: {100 * w['core_fraction']:.1f} % of a core over {w['seconds']:.0f} s "
                     f"({w['processes']} processes) (target <= 5 %)")
    if res.get("dispatch"):
        d = res["dispatch"]
        lines.append(f"- dispatch latency on warm workers: median {d['median_ms']:.1f} ms, p90 {d['p90_ms']:.1f} ms "
                     f"({d['tasks']} tasks; bulk {d['bulk_tasks_per_s']:.0f} tasks/s) (target median <= 50 ms)")
    lines += ["", "| stage | " + " | ".join(f"{r} span s | {r} code s" for r in runners) + " |",
              "|---|" + "---|---|" * len(runners)]
    for n in (res["summary"][runners[0]]["stage_span_s"] if args.runs and runners else []):
        cells = []
        for r in runners:
            s = res["summary"][r]
            cells += [f"{s['stage_span_s'].get(n, 0):.1f}", f"{s['stage_code_s'].get(n, 0):.1f}"]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    for site, sl in res["sites"].items():
        if sl and "ratio" in sl:
            lines.append(f"\n{site} (launch --site {site}): pilot {sl['pilot']['median_s']:.1f} s "
                         f"(runs {', '.join(f'{w:.1f}' for w in sl['pilot']['walls'])}), batch {sl['batch']['median_s']:.1f} s "
                         f"(runs {', '.join(f'{w:.1f}' for w in sl['batch']['walls'])}), ratio pilot/batch {sl['ratio']:.2f}")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwrote {out / 'results.json'}, {out / 'results.md'}, {out / 'results.png'}")


if __name__ == "__main__":
    main()
