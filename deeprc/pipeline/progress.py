"""Live progress view and the end-of-run summary table (rich)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from deeprc.pipeline.runfolder import RunFolder

STYLE = {"done": "green", "cached": "cyan", "running": "yellow", "failed": "red", "skipped": "magenta",
         "canceled": "red", "pending": "dim"}


def _secs(st: dict[str, Any], now: float) -> str:
    t0, t1 = st.get("started"), st.get("finished")
    if not t0 or st.get("state") in ("pending", "cached", "skipped"):
        return ""
    return f"{(t1 or now) - t0:.1f} s"


def stage_table(run: RunFolder, title: str = "", metrics: bool = False) -> Table:
    """One row per stage: state, attempts, time (and metrics in the summary)."""
    now = time.time()
    table = Table(title=title or None, title_justify="left")
    for col in ("stage", "state", "attempts", "time"):
        table.add_column(col)
    if metrics:
        table.add_column("metrics", overflow="fold")
    for name, st in run.status.get("stages", {}).items():
        state = st.get("state", "pending")
        row = [name, f"[{STYLE.get(state, '')}]{state}[/]", str(st.get("attempts", 0) or ""), _secs(st, now)]
        if metrics:
            m = st.get("metrics") or {}
            row.append(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in list(m.items())[:4] if not isinstance(v, (dict, list))))
        table.add_row(*row)
    return table


class Progress:
    """Rich Live view over a run folder's status; event lines are printed above it."""

    def __init__(self, run: RunFolder, title: str, console: Console | None = None) -> None:
        self.run, self.title = run, title
        self.console = console or Console(stderr=False)
        self.live = Live(stage_table(run, title), console=self.console, refresh_per_second=4, transient=True)
        self._last = 0.0

    def __enter__(self) -> "Progress":
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.__exit__(*exc)

    def update(self) -> None:
        now = time.time()
        if now - self._last > 0.2:
            self._last = now
            self.live.update(stage_table(self.run, self.title))

    def say(self, msg: str) -> None:
        self.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {msg}")
