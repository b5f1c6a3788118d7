"""Helpers shared by the stage functions: parameters, upstream lookup, root-only work, tables, progress."""

from __future__ import annotations

import math
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import pandas as pd

from deeprc.errors import DeepRCError

T = TypeVar("T")


def param(ctx: Any, name: str, default: Any = None, kind: type | None = None) -> Any:
    """A stage parameter, converted to `kind`, with a clear error when it cannot be."""
    value = ctx.params.get(name, default)
    if value is None or kind is None:
        return value
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise DeepRCError(f"stage '{ctx.name}' parameter '{name}': {value!r} is not a valid {kind.__name__}. "
                          f"Fix: set params.{name} to a {kind.__name__} in the pipeline spec.") from exc


def upstream_with(ctx: Any, filename: str, preferred: str | None = None) -> Path:
    """The upstream output folder holding `filename` (the `preferred` stage first)."""
    names = ([preferred] if preferred in ctx.inputs else []) + [n for n in ctx.inputs if n != preferred]
    for name in names:
        if (Path(ctx.inputs[name]) / filename).is_file():
            return Path(ctx.inputs[name])
    raise DeepRCError(f"stage '{ctx.name}': no upstream stage wrote {filename} (inputs: "
                      f"{', '.join(ctx.inputs) or 'none'}). Fix: add the preparation stage to this stage's "
                      "depends_on in the pipeline spec.")


def on_root(comm: Any, fn: Callable[[], T], share: Callable[[T], Any] | None = None) -> Any:
    """Run `fn` on rank 0; other ranks get `share(result)` (or the result); an error is raised on every rank."""
    result: Any = None
    message = None
    if comm.rank == 0:
        try:
            result = fn()
        except DeepRCError as exc:
            if comm.size == 1:
                raise
            message = str(exc)
    if comm.size > 1:
        shared = result if (share is None or message or comm.rank != 0) else share(result)
        message, shared = comm.bcast((message, shared), root=0)
        if comm.rank != 0:
            result = shared
    if message:
        raise DeepRCError(message)
    return result


def markdown_table(df: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-flavoured markdown table (floats rounded)."""
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.{digits}f}"
        return str(v)

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows]) + "\n"


def json_float(x: Any) -> float | None:
    """A float for metrics.json (None for NaN)."""
    x = float(x)
    return None if math.isnan(x) else round(x, 6)


@contextmanager
def progress(total: int, description: str, enabled: bool, log: Any) -> Iterator[Callable[[int, str], None]]:
    """A rich progress bar on a terminal, or one log line per step otherwise; yields update(step, note)."""
    if not enabled:
        yield lambda step, note="": None
        return
    if sys.stderr.isatty():
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TextColumn("{task.fields[note]}"), TimeElapsedColumn(), transient=False) as bar:
            task = bar.add_task(description, total=total, note="")
            yield lambda step, note="": bar.update(task, completed=step, note=note)
        return
    yield lambda step, note="": log.info("%s %d/%d %s", description, step, total, note)
