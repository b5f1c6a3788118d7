"""Time-series preparation on a DTable: lags, rolling statistics, calendar features, missing values,
global normalisation and time-based splits.

Per-series features first hash-repartition by the series key, so every series lies whole on one
rank and lags/rolling windows are right at what were partition boundaries.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping, Sequence

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from deeprc.data._comm import allreduce_int
from deeprc.data.table import DTable
from deeprc.errors import DeepRCError, config_error

FILL_STRATEGIES = ("error", "drop", "ffill", "interpolate", "zero")
ROLLING_STATS = ("mean", "std", "min", "max", "sum")
CALENDAR = ("year", "month", "day", "dayofweek", "dayofyear", "hour", "quarter", "weekofyear")


def _as_list(value: str | Sequence[Any]) -> list[Any]:
    return [value] if isinstance(value, (str, int)) else list(value)


def _need(t: DTable, cols: Sequence[str], what: str) -> None:
    for col in cols:
        if col not in t.column_names:
            raise config_error(t.source, col, f"{what}: column '{col}' is not in the table (its columns: "
                               f"{', '.join(t.column_names)})", "name an existing column")


def _need_numeric(t: DTable, cols: Sequence[str], what: str) -> None:
    for col in cols:
        ty = t.schema.field(col).type
        if not (pat.is_integer(ty) or pat.is_floating(ty) or pat.is_decimal(ty)):
            raise config_error(t.source, col, f"{what} needs a numeric column but '{col}' is {ty}",
                               f"cast '{col}' to a number first (with_column) or leave it out")


def by_series(t: DTable, id_col: str | None, time_col: str) -> DTable:
    """Repartition by series key and sort each rank's rows by (series, time)."""
    keys = [id_col] if id_col else []
    _need(t, keys + [time_col], "time-series preparation")
    if id_col is None:
        # one series: it must lie on one rank to be processed in order
        t = t.with_column("__deeprc_series", lambda tb: pa.nulls(tb.num_rows, pa.int8()))
        t = t.shuffle(["__deeprc_series"])
        t = t._derive(t.to_arrow().drop_columns(["__deeprc_series"]))
    else:
        t = t.shuffle(keys)
    local = t.to_arrow()
    if local.num_rows:
        local = local.sort_by([(c, "ascending") for c in keys + [time_col]])
    return t._derive(local)


def _polars(t: DTable) -> pl.DataFrame:
    frame = pl.from_arrow(t.to_arrow())
    assert isinstance(frame, pl.DataFrame)
    return frame


def _back(t: DTable, frame: pl.DataFrame, new_cols: Sequence[str]) -> DTable:
    """Append the new polars columns to the (same-order) local Arrow table, keeping original types."""
    local = t.to_arrow()
    out = frame.select(new_cols).to_arrow()
    for name in new_cols:
        col = out.column(name)
        if name in local.column_names:
            ty = local.schema.field(name).type
            local = local.set_column(local.schema.get_field_index(name), name, col.cast(ty))
        else:
            local = local.append_column(name, col)
    return t._derive(local)


def _over(expr: pl.Expr, id_col: str | None) -> pl.Expr:
    return expr.over(id_col) if id_col else expr


def add_lags(t: DTable, id_col: str | None, time_col: str, cols: str | Sequence[str],
             lags: int | Sequence[int]) -> DTable:
    """Columns `<col>_lag<k>`: the value k steps earlier in the same series (null before its start)."""
    cols, lags = _as_list(cols), [int(k) for k in _as_list(lags)]
    _need(t, cols, "add_lags")
    t = by_series(t, id_col, time_col)
    exprs, names = [], []
    for col in cols:
        for k in lags:
            if k < 1:
                raise DeepRCError(f"add_lags: lag {k} for '{col}' must be >= 1. Fix: pass positive lags.")
            names.append(f"{col}_lag{k}")
            exprs.append(_over(pl.col(col).shift(k), id_col).alias(names[-1]))
    return _back(t, _polars(t).with_columns(exprs), names)


def add_rolling(t: DTable, id_col: str | None, time_col: str, cols: str | Sequence[str],
                windows: int | Sequence[int], stats: Sequence[str] = ("mean", "std")) -> DTable:
    """Columns `<col>_roll<w>_<stat>` over the last w rows of the series, current row included.

    A window yields null until it holds w non-null values; std is the sample std (ddof=1).
    """
    cols, windows = _as_list(cols), [int(w) for w in _as_list(windows)]
    _need(t, cols, "add_rolling")
    _need_numeric(t, cols, "add_rolling")
    for stat in stats:
        if stat not in ROLLING_STATS:
            raise DeepRCError(f"add_rolling: statistic '{stat}' is not supported. Fix: use {', '.join(ROLLING_STATS)}.")
    t = by_series(t, id_col, time_col)
    exprs, names = [], []
    for col in cols:
        for w in windows:
            if w < 1:
                raise DeepRCError(f"add_rolling: window {w} for '{col}' must be >= 1. Fix: pass positive windows.")
            base = pl.col(col).cast(pl.Float64)
            for stat in stats:
                fn = getattr(base, f"rolling_{stat}")
                expr = fn(window_size=w, min_samples=w)
                names.append(f"{col}_roll{w}_{stat}")
                exprs.append(_over(expr, id_col).alias(names[-1]))
    return _back(t, _polars(t).with_columns(exprs), names)


def add_calendar(t: DTable, time_col: str, features: Sequence[str] = ("month", "dayofweek", "dayofyear")) -> DTable:
    """Calendar columns `<time>_<feature>` from a date/timestamp column (row-local, no exchange)."""
    _need(t, [time_col], "add_calendar")
    ty = t.schema.field(time_col).type
    if not (pat.is_timestamp(ty) or pat.is_date(ty)):
        raise config_error(t.source, time_col, f"add_calendar needs a date or timestamp column but "
                           f"'{time_col}' is {ty}", "parse it first, e.g. with_column(name, lambda tb: "
                           "pc.strptime(tb['col'], '%Y-%m-%d', 's'))")
    fns = {"year": pc.year, "month": pc.month, "day": pc.day, "dayofweek": pc.day_of_week,
           "dayofyear": pc.day_of_year, "hour": pc.hour, "quarter": pc.quarter, "weekofyear": pc.iso_week}
    for feat in features:
        if feat not in fns:
            raise DeepRCError(f"add_calendar: feature '{feat}' is not supported. Fix: use {', '.join(CALENDAR)}.")
        if feat == "hour" and pat.is_date(ty):
            raise config_error(t.source, time_col, "feature 'hour' needs a timestamp, not a date",
                               "drop 'hour' or use a timestamp column")
        t = t.with_column(f"{time_col}_{feat}", lambda tb, fn=fns[feat]: fn(tb[time_col]).cast(pa.int32()))
    return t


def fill_missing(t: DTable, cols: str | Sequence[str], strategy: str = "error", *, id_col: str | None = None,
                 time_col: str | None = None) -> DTable:
    """Handle nulls in `cols` explicitly.

    error: raise, naming the column and how many nulls (collective); drop: drop those rows; zero:
    fill 0; ffill: carry the last value forward within each series (leading nulls stay null);
    interpolate: linear in time within each series (nulls before the first or after the last value
    stay null). ffill and interpolate need `time_col` (and `id_col` for several series).
    """
    cols = _as_list(cols)
    _need(t, cols, "fill_missing")
    if strategy not in FILL_STRATEGIES:
        raise DeepRCError(f"fill_missing: strategy '{strategy}' is unknown. Fix: use one of {', '.join(FILL_STRATEGIES)}.")
    if strategy == "error":
        local = t.to_arrow()
        for col in cols:
            nulls = allreduce_int(t.comm, local.column(col).null_count)
            if nulls:
                raise config_error(t.source, col, f"{nulls} missing values (nulls) in '{col}'",
                                   "choose a fill_missing strategy: drop, ffill, interpolate or zero")
        return t
    if strategy == "drop":
        local = t.to_arrow()
        mask = None
        for col in cols:
            valid = pc.is_valid(local.column(col))
            mask = valid if mask is None else pc.and_(mask, valid)
        return t._derive(local.filter(mask) if mask is not None and local.num_rows else local)
    if strategy == "zero":
        _need_numeric(t, cols, "fill_missing(zero)")
        local = t.to_arrow()
        for col in cols:
            i = local.schema.get_field_index(col)
            local = local.set_column(i, col, pc.fill_null(local.column(col), pa.scalar(0).cast(local.schema.field(col).type)))
        return t._derive(local)
    if time_col is None:
        raise DeepRCError(f"fill_missing(strategy='{strategy}') needs time_col (and id_col when the table holds "
                          "several series). Fix: pass time_col='...'.")
    t = by_series(t, id_col, time_col)
    frame = _polars(t)
    if strategy == "ffill":
        exprs = [_over(pl.col(c).forward_fill(), id_col).alias(c) for c in cols]
    else:
        _need_numeric(t, cols, "fill_missing(interpolate)")
        exprs = [_over(pl.col(c).cast(pl.Float64).interpolate_by(time_col), id_col).alias(c) for c in cols]
    local = t.to_arrow()
    filled = frame.with_columns(exprs).select(cols).to_arrow()
    for col in cols:
        target = local.schema.field(col).type
        col_data = filled.column(col)
        if strategy == "interpolate" and not pat.is_floating(target):
            target = pa.float64()
        local = local.set_column(local.schema.get_field_index(col), pa.field(col, target), col_data.cast(target))
    return t._derive(local)


def compute_stats(t: DTable, cols: Sequence[str], method: str = "zscore") -> dict[str, dict[str, float]]:
    """Global per-column statistics through allreduce: zscore -> mean, std (population); minmax -> min, max."""
    local = t.to_arrow()
    stats: dict[str, dict[str, float]] = {}
    for col in cols:
        arr = local.column(col).cast(pa.float64()).drop_null().to_numpy() if local.num_rows else np.zeros(0)
        if method == "zscore":
            s = np.array([arr.size, arr.sum()], dtype=np.float64)
            s = np.asarray(t.comm.allreduce(s, op="sum")) if t.comm.size > 1 else s
            n = s[0]
            mean = s[1] / n if n else float("nan")
            m2 = np.array([((arr - mean) ** 2).sum()], dtype=np.float64)
            m2 = np.asarray(t.comm.allreduce(m2, op="sum")) if t.comm.size > 1 else m2
            std = float(np.sqrt(m2[0] / n)) if n else float("nan")
            stats[col] = {"mean": float(mean), "std": std, "count": int(n)}
        else:
            lo = np.array([arr.min() if arr.size else np.inf])
            hi = np.array([arr.max() if arr.size else -np.inf])
            if t.comm.size > 1:
                lo, hi = np.asarray(t.comm.allreduce(lo, op="min")), np.asarray(t.comm.allreduce(hi, op="max"))
            stats[col] = {"min": float(lo[0]), "max": float(hi[0])}
    return stats


def normalize(t: DTable, cols: str | Sequence[str], method: str = "zscore",
              stats: Mapping[str, Mapping[str, float]] | None = None) -> tuple[DTable, dict[str, dict[str, float]]]:
    """Scale columns with global statistics (computed by allreduce unless given, e.g. the training split's).

    zscore: (x - mean) / std; minmax: (x - min) / (max - min). A zero spread divides by 1.
    Returns the table and the statistics, which :func:`denormalize` needs to map predictions back.
    """
    cols = _as_list(cols)
    _need(t, cols, "normalize")
    _need_numeric(t, cols, "normalize")
    if method not in ("zscore", "minmax"):
        raise DeepRCError(f"normalize: method '{method}' is unknown. Fix: use 'zscore' or 'minmax'.")
    stats = {c: dict(v) for c, v in stats.items()} if stats is not None else compute_stats(t, cols, method)
    local = t.to_arrow()
    for col in cols:
        if col not in stats:
            raise DeepRCError(f"normalize: no statistics given for column '{col}'. Fix: pass stats from "
                              "compute_stats/normalize for every column you scale.")
        centre, spread = _centre_spread(stats[col], method)
        scaled = pc.divide(pc.subtract(local.column(col).cast(pa.float64()), centre), spread)
        local = local.set_column(local.schema.get_field_index(col), pa.field(col, pa.float64()), scaled)
    return t._derive(local), stats


def _centre_spread(stat: Mapping[str, float], method: str) -> tuple[float, float]:
    if method == "zscore":
        centre, spread = stat["mean"], stat["std"]
    else:
        centre, spread = stat["min"], stat["max"] - stat["min"]
    return float(centre), float(spread) if spread and np.isfinite(spread) else 1.0


def denormalize(values: Any, stat: Mapping[str, float], method: str = "zscore") -> np.ndarray:
    """Map scaled values (e.g. predictions) back to the original units of one column."""
    centre, spread = _centre_spread(stat, method)
    return np.asarray(values, dtype=np.float64) * spread + centre


def time_split(t: DTable, time_col: str, val_start: Any = None, test_start: Any = None,
               fractions: tuple[float, float, float] | None = None) -> tuple[DTable, DTable, DTable]:
    """Split by time: train < val_start <= validation < test_start <= test.

    With `fractions` (e.g. (0.7, 0.15, 0.15)) the cut points are taken from the global sorted set of
    distinct time points, so every series is cut at the same instants.
    """
    _need(t, [time_col], "time_split")
    if fractions is not None:
        if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
            raise DeepRCError(f"time_split: fractions {fractions} must be three non-negative numbers summing to 1. "
                              "Fix: e.g. fractions=(0.7, 0.15, 0.15).")
        times = t.select([time_col]).distinct().sort(time_col).gather_partitions()
        cuts = None
        if times is not None:
            column = pa.concat_tables(times).column(time_col).drop_null()
            n = len(column)
            a, b = int(round(n * fractions[0])), int(round(n * (fractions[0] + fractions[1])))
            cuts = (column[a].as_py() if a < n else None, column[b].as_py() if b < n else None)
        cuts = t.comm.bcast(cuts, root=0) if t.comm.size > 1 else cuts
        val_start, test_start = cuts
    if val_start is None and fractions is None:
        raise DeepRCError("time_split needs val_start and test_start, or fractions. Fix: pass one of them.")
    local = t.to_arrow()
    col = local.column(time_col)
    ty = col.type

    def before(x: Any) -> Any:
        if x is None:
            return pa.array(np.ones(local.num_rows, dtype=bool))
        return pc.less(col, pa.scalar(_coerce(x, ty), ty))

    in_train = before(val_start)
    in_val = pc.and_(pc.invert(in_train), before(test_start))
    in_test = pc.invert(pc.or_(in_train, in_val))
    return (t._derive(local.filter(in_train)), t._derive(local.filter(in_val)), t._derive(local.filter(in_test)))


def _coerce(x: Any, ty: pa.DataType) -> Any:
    """Accept ISO strings for date/timestamp cut points."""
    if isinstance(x, str) and (pat.is_timestamp(ty) or pat.is_date(ty)):
        value = dt.datetime.fromisoformat(x)
        return value.date() if pat.is_date(ty) else value
    return x
