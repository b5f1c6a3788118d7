"""Local (one-rank) kernels: DuckDB/polars where they measured faster here, Arrow/Acero otherwise.

Measured on this (busy) 2-core machine with one thread: 500k x 500k int64-key inner join, DuckDB
0.18-0.25 s, polars 0.25-0.34 s, Acero 0.34-0.45 s; sorting 500k rows, polars 0.05-0.07 s, DuckDB
0.14-0.17 s, Arrow 0.18-0.20 s. So `auto` joins with DuckDB and sorts with polars. They are used only
for column types they round-trip exactly, and results are cast back to the input's Arrow types.
`DEEPRC_DATA_KERNEL` = auto | duckdb | polars | arrow picks one for both operators.
"""

from __future__ import annotations

import os
from typing import Sequence

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from deeprc.errors import DeepRCError
from deeprc.settings import DATA_KERNELS, env_choice

JOIN_TYPES = {"inner": "inner", "left": "left outer", "right": "right outer", "outer": "full outer"}
_POLARS_HOW = {"inner": "inner", "left": "left", "right": "right", "outer": "full"}


KERNELS = DATA_KERNELS
_DUCKDB: dict[str, object] = {}


def kernel_choice() -> str:
    """`DEEPRC_DATA_KERNEL`: auto (DuckDB joins, polars sorts, where the types fit), duckdb, polars, arrow."""
    return env_choice("DEEPRC_DATA_KERNEL", KERNELS)


def threads() -> int:
    """Threads one rank's kernels may use: the cores shared among the ranks on this node."""
    local = int(os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE") or os.environ.get("SLURM_NTASKS_PER_NODE", "1") or 1)
    return max(1, (os.cpu_count() or 1) // max(1, local))


def _duckdb() -> object:
    """One DuckDB connection per process, limited to this rank's share of the cores."""
    if "con" not in _DUCKDB:
        import duckdb

        con = duckdb.connect()
        con.execute(f"SET threads TO {threads()}")
        con.execute("SET preserve_insertion_order = false")
        _DUCKDB["con"] = con
    return _DUCKDB["con"]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _duckdb_join(left: pa.Table, right: pa.Table, on: Sequence[str], how: str, schema: pa.Schema,
                 lren: dict, rren: dict) -> pa.Table:
    con = _duckdb()
    cols = [f"COALESCE(l.{_quote(k)}, r.{_quote(k)}) AS {_quote(k)}" if k in on else
            f"l.{_quote(k)} AS {_quote(lren.get(k, k))}" for k in left.column_names]
    cols += [f"r.{_quote(k)} AS {_quote(rren.get(k, k))}" for k in right.column_names if k not in on]
    cond = " AND ".join(f"l.{_quote(k)} = r.{_quote(k)}" for k in on)
    kind = {"inner": "INNER", "left": "LEFT", "right": "RIGHT", "outer": "FULL OUTER"}[how]
    con.register("__deeprc_l", left)  # type: ignore[attr-defined]
    con.register("__deeprc_r", right)  # type: ignore[attr-defined]
    try:
        query = f"SELECT {', '.join(cols)} FROM __deeprc_l l {kind} JOIN __deeprc_r r ON {cond}"
        out = con.sql(query).to_arrow_table()  # type: ignore[attr-defined]
    finally:
        con.unregister("__deeprc_l")  # type: ignore[attr-defined]
        con.unregister("__deeprc_r")  # type: ignore[attr-defined]
    return _cast_to(out, schema)


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
    simple = _polars_safe(left.schema) and _polars_safe(right.schema)
    if choice in ("auto", "duckdb") and simple:
        return _duckdb_join(left, right, on, how, schema, lren, rren)
    if choice == "polars" and _polars_safe(left.schema) and _polars_safe(right.schema):
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
    if kernel_choice() in ("auto", "polars") and not nan_desc and _polars_safe(table.schema):
        out = _to_polars(table).sort(list(by), descending=[not a for a in ascending], nulls_last=True)
        return _cast_to(out.to_arrow(), table.schema)
    return table.sort_by([(c, "ascending" if a else "descending") for c, a in zip(by, ascending)])
