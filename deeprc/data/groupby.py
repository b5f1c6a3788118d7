"""Distributed group-by: local partial aggregates, shuffle of the partials by key, exact combine.

std is combined with Chan's parallel formula from (count, mean, M2) partials, so it matches a
single-pass sample standard deviation (ddof=1) rather than the cancellation-prone sum of squares.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from deeprc.data.shuffle import hash_shuffle
from deeprc.errors import DeepRCError, config_error

AGGREGATES = ("count", "sum", "mean", "min", "max", "std")
NUMERIC_ONLY = ("sum", "mean", "std")


def normalise_spec(spec: Mapping[str, str | Sequence[str]]) -> dict[str, list[str]]:
    """{"col": "sum"} or {"col": ["sum", "std"]} -> {"col": ["sum", "std"]}, checking the names."""
    out = {}
    for col, aggs in spec.items():
        aggs = [aggs] if isinstance(aggs, str) else list(aggs)
        for agg in aggs:
            if agg not in AGGREGATES:
                raise DeepRCError(f"aggregate '{agg}' for column '{col}' is not supported. "
                                  f"Fix: use one of {', '.join(AGGREGATES)}.")
        out[col] = aggs
    return out


def check_columns(schema: pa.Schema, keys: Sequence[str], spec: dict[str, list[str]], source: str) -> None:
    """Keys and aggregated columns exist; numeric aggregates only on numeric columns."""
    for col in list(keys) + list(spec):
        if col not in schema.names:
            raise config_error(source, col, f"column '{col}' is not in the table (its columns: "
                               f"{', '.join(schema.names)})", "group by and aggregate existing columns")
    for col, aggs in spec.items():
        t = schema.field(col).type
        numeric = pat.is_integer(t) or pat.is_floating(t) or pat.is_decimal(t) or pat.is_boolean(t) or pat.is_null(t)
        bad = [a for a in aggs if a in NUMERIC_ONLY]
        if bad and not numeric:
            raise config_error(source, col, f"aggregate {'/'.join(bad)} needs a numeric column but '{col}' is {t}",
                               f"cast '{col}' to a number with with_column, or use count/min/max on it")


def _partials(table: pa.Table, keys: Sequence[str], spec: dict[str, list[str]]) -> pa.Table:
    """Per-group partial aggregates of this rank's rows: count, sum, min, max, mean, M2 as needed."""
    aggs: list[tuple] = []
    names: list[str] = []
    for col, wanted in spec.items():
        src = col
        needs = {"count"}
        if "sum" in wanted:
            needs.add("sum")
        if "mean" in wanted or "std" in wanted:
            needs.add("mean")
        if "std" in wanted:
            needs.add("variance")
        needs |= {a for a in wanted if a in ("min", "max")}
        for kind in ("count", "sum", "mean", "variance", "min", "max"):
            if kind in needs:
                opts = pc.VarianceOptions(ddof=0) if kind == "variance" else None
                aggs.append((src, kind, opts) if opts else (src, kind))
                names.append(f"{col}\x1f{kind}")
    result = table.group_by(list(keys), use_threads=False).aggregate(aggs)
    # Arrow has put the keys first (pyarrow >= 14) or last (older): name every column explicitly
    if result.column_names[: len(keys)] == list(keys):
        return result.rename_columns(list(keys) + names)
    return result.rename_columns(names + list(keys))


def _combine(partials: pa.Table, keys: Sequence[str], spec: dict[str, list[str]], schema: pa.Schema) -> pa.Table:
    """Merge partials of the same group (they now sit on one rank) into final aggregates."""
    frame = pl.from_arrow(partials)
    assert isinstance(frame, pl.DataFrame)
    exprs = []
    for col, wanted in spec.items():
        n_i = pl.col(f"{col}\x1fcount")
        n = n_i.sum()
        if "count" in wanted:
            exprs.append(n.alias(f"{col}_count"))
        if "sum" in wanted:
            exprs.append(pl.when(n > 0).then(pl.col(f"{col}\x1fsum").sum()).otherwise(None).alias(f"{col}_sum"))
        if "mean" in wanted or "std" in wanted:
            mean_i = pl.col(f"{col}\x1fmean").cast(pl.Float64).fill_null(0.0)
            mean = (n_i * mean_i).sum() / n
            if "mean" in wanted:
                exprs.append(pl.when(n > 0).then(mean).otherwise(None).alias(f"{col}_mean"))
            if "std" in wanted:
                m2_i = pl.col(f"{col}\x1fvariance").cast(pl.Float64).fill_null(0.0) * n_i
                m2 = m2_i.sum() + (n_i * (mean_i - mean) ** 2).sum()
                exprs.append(pl.when(n > 1).then((m2 / (n - 1)).sqrt()).otherwise(None).alias(f"{col}_std"))
        for kind in ("min", "max"):
            if kind in wanted:
                part = pl.col(f"{col}\x1f{kind}")
                exprs.append((part.min() if kind == "min" else part.max()).alias(f"{col}_{kind}"))
    out = frame.group_by(list(keys), maintain_order=False).agg(exprs).to_arrow()
    return _restore_types(out, keys, spec, schema)


def _restore_types(out: pa.Table, keys: Sequence[str], spec: dict[str, list[str]], schema: pa.Schema) -> pa.Table:
    """Polars hands back its own string/int types; give keys and min/max their input types again."""
    target = {k: schema.field(k).type for k in keys}
    for col, wanted in spec.items():
        for kind in ("min", "max"):
            if kind in wanted:
                target[f"{col}_{kind}"] = schema.field(col).type
        if "count" in wanted:
            target[f"{col}_count"] = pa.int64()
    fields = []
    for f in out.schema:
        fields.append(pa.field(f.name, target.get(f.name, f.type)))
    columns = [out.column(i).cast(f.type) if not out.column(i).type.equals(f.type) else out.column(i)
               for i, f in enumerate(fields)]
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def distributed_groupby(comm: Any, table: pa.Table, keys: Sequence[str], spec: Mapping[str, Any],
                        source: str) -> pa.Table:
    """Group `table` (partitioned over `comm`) by `keys` and aggregate as `spec` says."""
    keys = [keys] if isinstance(keys, str) else list(keys)
    if not keys:
        raise DeepRCError("groupby needs at least one key column. Fix: pass groupby(['col', ...]).")
    norm = normalise_spec(spec)
    check_columns(table.schema, keys, norm, source)
    bools = [c for c in norm if pat.is_boolean(table.schema.field(c).type)]
    for c in bools:  # Arrow sums booleans but not their mean/variance consistently: use 0/1 integers
        table = table.set_column(table.schema.get_field_index(c), c, table.column(c).cast(pa.int64()))
    partial = _partials(table, keys, norm)
    partial = hash_shuffle(comm, partial, keys)
    return _combine(partial, keys, norm, table.schema)
