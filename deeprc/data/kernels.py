"""Local (one-rank) kernels: polars where it measured faster here, Arrow compute/Acero otherwise.

Measured on this 2-core machine, one thread, 5M x 5M int64 keys: polars inner join 4.2-4.8 s vs
Acero 5.5-8.5 s; polars sort 1.1 s vs Arrow 3.0-4.7 s (benchmarks/dataframe.py reports both paths).
Polars is used only for column types it round-trips exactly; results are cast back to Arrow types.
"""

from __future__ import annotations

import os
from typing import Sequence

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from deeprc.errors import DeepRCError

JOIN_TYPES = {"inner": "inner", "left": "left outer", "right": "right outer", "outer": "full outer"}
_POLARS_HOW = {"inner": "inner", "left": "left", "right": "right", "outer": "full"}


def kernel_choice() -> str:
    """`DEEPRC_DATA_KERNEL`: auto (polars where it fits), polars, or arrow."""
    return os.environ.get("DEEPRC_DATA_KERNEL", "auto")


def _polars_safe(schema: pa.Schema) -> bool:
    for f in schema:
        t = f.type
        if not (pat.is_integer(t) or pat.is_floating(t) or pat.is_boolean(t) or pat.is_string(t)
                or pat.is_large_string(t) or pat.is_timestamp(t) or pat.is_date(t)):
            return False
    return True


def _to_polars(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _cast_to(table: pa.Table, schema: pa.Schema) -> pa.Table:
    cols = [table.column(f.name) if table.schema.field(f.name).type.equals(f.type) else table.column(f.name).cast(f.type)
            for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


def join_schema(left: pa.Schema, right: pa.Schema, on: Sequence[str], suffixes: tuple[str, str]) -> tuple[pa.Schema, dict, dict]:
    """The output schema of a join (keys coalesced at the left positions) and the column renames."""
    right_names = set(right.names) - set(on)
    left_names = set(left.names) - set(on)
    lren = {n: n + suffixes[0] for n in left.names if n in right_names and suffixes[0]}
    rren = {n: n + suffixes[1] for n in right.names if n in left_names and suffixes[1]}
    fields = [pa.field(lren.get(f.name, f.name), f.type) for f in left]
    fields += [pa.field(rren.get(f.name, f.name), f.type) for f in right if f.name not in on]
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise DeepRCError(f"join on {list(on)}: the output would have duplicate column names {names}. Fix: pass "
                          "suffixes=(left, right) that tell the clashing non-key columns apart.")
    return pa.schema(fields), lren, rren


def local_join(left: pa.Table, right: pa.Table, on: Sequence[str], how: str, suffixes: tuple[str, str]) -> pa.Table:
    """Hash join of two local tables: SQL semantics (null keys never match), keys coalesced."""
    schema, lren, rren = join_schema(left.schema, right.schema, on, suffixes)
    choice = kernel_choice()
    if choice != "arrow" and _polars_safe(left.schema) and _polars_safe(right.schema):
        lf = _to_polars(left.rename_columns([lren.get(n, n) for n in left.column_names]))
        rf = _to_polars(right.rename_columns([rren.get(n, n) for n in right.column_names]))
        out = lf.join(rf, on=list(on), how=_POLARS_HOW[how], coalesce=True, nulls_equal=False)
        return _cast_to(out.select(schema.names).to_arrow(), schema)
    try:
        out = left.rename_columns([lren.get(n, n) for n in left.column_names]).join(
            right.rename_columns([rren.get(n, n) for n in right.column_names]), keys=list(on),
            join_type=JOIN_TYPES[how], coalesce_keys=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DeepRCError(f"join on {list(on)} failed: {exc}. Fix: use key and payload types Arrow can join "
                          "(numbers, strings, dates), or select fewer columns before joining.") from exc
    return _cast_to(out.select(schema.names), schema)


def local_sort(table: pa.Table, by: Sequence[str], ascending: Sequence[bool]) -> pa.Table:
    """Sort one partition; nulls last, NaN after numbers but before nulls, in both directions."""
    if table.num_rows == 0:
        return table
    nan_desc = any(pat.is_floating(table.schema.field(c).type) and not a and pc.any(pc.is_nan(table.column(c))).as_py()
                   for c, a in zip(by, ascending))
    if kernel_choice() != "arrow" and not nan_desc and _polars_safe(table.schema):
        out = _to_polars(table).sort(list(by), descending=[not a for a in ascending], nulls_last=True)
        return _cast_to(out.to_arrow(), table.schema)
    return table.sort_by([(c, "ascending" if a else "descending") for c, a in zip(by, ascending)])
