"""The run report: metrics tables, the stages' plots and a timeline chart (Markdown and HTML)."""

from __future__ import annotations

import html
import json
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from deeprc.pipeline.runfolder import DONE, RunFolder, read_json, require_run_folder


def task_spans(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One span per task attempt: stage, task, queued, started, ended, ok.

    Keyed by stage and task, and a `queued` event after a span ended opens a new one: task ids are unique
    within one runner process only (every job of a `launch --mode batch` run numbers its task `batch.0001`)."""
    spans: list[dict[str, Any]] = []
    open_: dict[tuple[str, str], dict[str, Any]] = {}
    for ev in timeline:
        if ev.get("task") in (None, "-"):
            continue
        key = (ev["stage"], ev["task"])
        sp = open_.get(key)
        if sp is None or (ev["event"] == "queued" and "ended" in sp):
            sp = open_[key] = {"stage": ev["stage"], "task": ev["task"]}
            spans.append(sp)
        if ev["event"] == "queued":
            sp["queued"] = ev["t"]
        elif ev["event"] == "started":
            sp["started"] = ev["t"]
        elif ev["event"] in ("finished", "failed"):
            sp["ended"] = ev["t"]
            sp["ok"] = ev["event"] == "finished"
    out = [s for s in spans if "ended" in s]
    for s in out:
        s.setdefault("queued", s.get("started", s["ended"]))
        s.setdefault("started", s["queued"])
    return sorted(out, key=lambda s: s["queued"])


def timeline_chart(run_dir: Path, out: Path) -> Path | None:
    """Per-task bars: queued (light), running (colour), the stage code itself (dark inner bar)."""

    spans = task_spans(RunFolder(run_dir).timeline())
    if not spans:
        return None
    try:
        import matplotlib
    except ImportError:  # a container site's host has only DeepRC's client: the report goes without the chart
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = min(s["queued"] for s in spans)
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(spans) + 1.5))
    for i, s in enumerate(spans):
        colour = "tab:green" if s.get("ok") else "tab:red"
        ax.barh(i, s["started"] - s["queued"], left=s["queued"] - t0, color="lightgrey", height=0.6)
        ax.barh(i, s["ended"] - s["started"], left=s["started"] - t0, color=colour, alpha=0.6, height=0.6)
        done = read_json(run_dir / "stages" / s["stage"] / DONE) or {}
        c0, c1 = done.get("code_started"), done.get("code_finished")
        if s.get("ok") and c0 and c1 and s["started"] - 1 <= c0 <= s["ended"]:
            ax.barh(i, c1 - c0, left=c0 - t0, color=colour, height=0.25)
    ax.set_yticks(range(len(spans)), [f"{s['stage']} ({s['task']})" for s in spans], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the first task was queued")
    ax.set_title("tasks: grey queued, bar running, inner bar = stage code")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def time_split(run_dir: str | Path) -> dict[str, float]:
    """Where the last run's wall time went: start-up until its first task ran (the pilot's start), the
    stages (first task started to last task ended) and the close; {} when no task ran."""
    from deeprc.pipeline.runfolder import RunFolder

    run = RunFolder(run_dir)
    t0, t1 = run.status.get("started"), run.status.get("finished")
    spans = [s for s in task_spans(run.timeline()) if t0 and s["queued"] >= t0]
    if not spans or not t1:
        return {}
    first, last = min(s["started"] for s in spans), max(s["ended"] for s in spans)
    return {f"{run.status.get('runner', 'runner')} start": first - t0, "stages": last - first, "close": t1 - last}


def _scalar(v: Any) -> bool:
    return isinstance(v, (int, float, str, bool)) or v is None


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _tables(metrics: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """Scalar metrics of every stage as one table; list-of-dict metrics (e.g. evaluate's summary) as their own."""
    tables = []
    rows = []
    for stage, m in metrics.items():
        if not isinstance(m, dict):
            continue
        scal = {k: v for k, v in m.items() if _scalar(v)}
        if scal:
            rows.append([stage, ", ".join(f"{k}={_fmt(v)}" for k, v in scal.items())])
        for k, v in m.items():
            if isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
                cols = list(dict.fromkeys(c for r in v for c in r))
                tables.append((f"{stage}: {k}", cols, [[_fmt(r.get(c, "")) for c in cols] for r in v]))
            elif isinstance(v, dict) and v and all(isinstance(r, dict) for r in v.values()):
                cols = list(dict.fromkeys(c for r in v.values() for c in r))
                tables.append((f"{stage}: {k}", ["name", *cols], [[n, *[_fmt(r.get(c, "")) for c in cols]] for n, r in v.items()]))
    tables.insert(0, ("metrics of every stage", ["stage", "metrics"], rows))
    return tables


def _collect_plots(run_dir: Path) -> list[Path]:
    """Copy the PNGs that stages wrote into RUN/plots (stage-prefixed) and list all plots."""
    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    for png in sorted((run_dir / "stages").glob("*/**/*.png")):
        stage = png.relative_to(run_dir / "stages").parts[0]
        dest = plots / f"{stage}-{png.name}"
        if not dest.exists() or dest.stat().st_mtime < png.stat().st_mtime:
            shutil.copy2(png, dest)
    return sorted(p for p in plots.glob("*.png") if p.name != "timeline.png")


def build_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write RUN/report.md and RUN/report.html (and RUN/plots/timeline.png); return their paths."""
    run_dir = require_run_folder(run_dir)
    status = read_json(run_dir / "status.json", {}) or {}
    stages = status.get("stages", {})
    metrics = {n: (read_json(run_dir / "stages" / n / DONE, {}) or {}).get("metrics", {}) for n in stages}
    metrics = {n: m for n, m in metrics.items() if m}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    chart = timeline_chart(run_dir, run_dir / "plots" / "timeline.png")
    plots = _collect_plots(run_dir)
    spans = task_spans(RunFolder(run_dir).timeline())
    title = f"DeepRC run {status.get('pipeline', run_dir.name)} ({status.get('profile', '')})"
    wall = status.get("wall_s")
    head = [f"run folder: {run_dir}", f"state: {status.get('run', '?')}", f"runner: {status.get('runner', '?')}",
            f"site: {status.get('site', '?')}", f"host: {status.get('host', '?')}"]
    if wall:
        split = time_split(run_dir)
        head.append(f"wall time: {wall:.1f} s" + (" (" + ", ".join(f"{k} {v:.1f} s" for k, v in split.items()) + ")"
                                                   if split else ""))
    command = status.get("command", "")
    versions = status.get("versions", {})
    logs = {n: f"logs/{n}.log" for n in stages if (run_dir / "logs" / f"{n}.log").is_file()}
    stage_rows = [[n, st.get("state", ""), str(st.get("attempts", "")),
                   f"{st['finished'] - st['started']:.1f}" if st.get("finished") and st.get("started") else "",
                   logs.get(n, "")] for n, st in stages.items()]
    task_rows = [[s["stage"], s["task"], f"{s['started'] - s['queued']:.2f}", f"{s['ended'] - s['started']:.2f}",
                  "ok" if s.get("ok") else "failed"] for s in spans]
    sections = [("stages", ["stage", "state", "attempts", "seconds", "log"], stage_rows), *_tables(metrics),
                ("tasks", ["stage", "task", "waited s", "ran s", "result"], task_rows),
                ("versions", ["package", "version"], [[k, str(v)] for k, v in versions.items()])]
    images = ([chart] if chart else []) + plots
    summaries = [(n, (run_dir / "stages" / n / "summary.md").read_text()) for n in stages
                 if (run_dir / "stages" / n / "summary.md").is_file()]

    links = set(logs.values())
    md = [f"# {title}", "", *[f"- {h}" for h in head], f"- written {time.strftime('%Y-%m-%d %H:%M:%S')}", ""]
    if command:
        md += ["command line:", "", "```", command, "```", ""]
    for name, cols, rows in sections:
        md += [f"## {name}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        md += ["| " + " | ".join(f"[{c}]({quote(c)})" if c in links else c.replace("|", "\\|") for c in r) + " |"
               for r in rows] + [""]
    for n, text in summaries:
        md += [f"## summary of {n}", "", text.replace("\n# ", "\n### ").removeprefix("# "), ""]
    md += ["## plots", ""] + [f"![{p.stem}]({p.relative_to(run_dir)})" for p in images]
    md_path = run_dir / "report.md"
    md_path.write_text("\n".join(md) + "\n")

    e = html.escape
    h = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>",
         "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse;margin:1em 0}"
         "td,th{border:1px solid #ccc;padding:3px 8px;font-size:90%}img{max-width:100%}"
         "pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f6f6;padding:6px}</style></head><body>",
         f"<h1>{e(title)}</h1><ul>" + "".join(f"<li>{e(x)}</li>" for x in head) + "</ul>"]
    if command:
        h.append(f"<p>command line:</p><pre id='command'>{e(command)}</pre>")
    for name, cols, rows in sections:
        h.append(f"<h2>{e(name)}</h2><table><tr>" + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>")
        h += ["<tr>" + "".join(f"<td><a href='{e(quote(c))}'>{e(Path(c).name)}</a></td>" if c in links else f"<td>{e(c)}</td>"
                               for c in r) + "</tr>" for r in rows]
        h.append("</table>")
    for n, text in summaries:
        h.append(f"<h2>summary of {e(n)}</h2><pre>{e(text)}</pre>")
    h.append("<h2>plots</h2>")
    h += [f"<figure><img src='{e(str(p.relative_to(run_dir)))}'><figcaption>{e(p.stem)}</figcaption></figure>" for p in images]
    h.append("</body></html>")
    html_path = run_dir / "report.html"
    html_path.write_text("\n".join(h))
    return md_path, html_path
