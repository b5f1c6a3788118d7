"""Distributed sample sort: local sort, splitters from an allgathered sample, range exchange, merge."""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import pyarrow as pa

from deeprc.data.ipc import from_bytes, to_bytes
from deeprc.data.kernels import local_sort
from deeprc.data.shuffle import exchange

SAMPLES_PER_RANK = 64


def _cmp_value(a: Any, b: Any, asc: bool) -> int:
    """Compare two values the way Arrow's sort orders them: values, then NaN, then null."""
    def rank(v: Any) -> int:
        if v is None:
            return 2
        if isinstance(v, float) and math.isnan(v):
            return 1
        return 0

    ra, rb = rank(a), rank(b)
    if ra or rb:
        return (ra > rb) - (ra < rb)
    result = (a > b) - (a < b)
    return result if asc else -result


def compare_rows(a: tuple, b: tuple, ascending: Sequence[bool]) -> int:
    """Three-way compare of two key tuples in the sort order."""
    for x, y, asc in zip(a, b, ascending):
        c = _cmp_value(x, y, asc)
        if c:
            return c
    return 0


def _row(table: pa.Table, i: int) -> tuple:
    return tuple(table.column(c)[i].as_py() for c in table.column_names)


def _lower_bound(keys: pa.Table, target: tuple, ascending: Sequence[bool]) -> int:
    """First row of the sorted `keys` that is not before `target` (binary search)."""
    lo, hi = 0, keys.num_rows
    while lo < hi:
        mid = (lo + hi) // 2
        if compare_rows(_row(keys, mid), target, ascending) < 0:
            lo = mid + 1
        else:
            hi = mid
    return lo


def choose_splitters(comm: Any, keys: pa.Table, ascending: Sequence[bool]) -> list[tuple]:
    """size-1 splitter rows taken at even quantiles of a sample from every rank's sorted keys."""
    n = keys.num_rows
    take = min(n, SAMPLES_PER_RANK)
    idx = [int((i + 0.5) * n / take) for i in range(take)] if take else []
    sample = keys.take(pa.array(idx, pa.int64())) if idx else keys.slice(0, 0)
    tables = [from_bytes(b) for b in comm.allgather(to_bytes(sample))]
    merged = pa.concat_tables([t.cast(keys.schema) for t in tables])
    rows = sorted((_row(merged, i) for i in range(merged.num_rows)),
                  key=functools.cmp_to_key(lambda a, b: compare_rows(a, b, ascending)))
    if not rows:
        return []
    return [rows[min(len(rows) - 1, len(rows) * k // comm.size)] for k in range(1, comm.size)]


def distributed_sort(comm: Any, table: pa.Table, by: Sequence[str], ascending: Sequence[bool]) -> pa.Table:
    """Sort globally: rank r ends up with rows that all come after rank r-1's and before rank r+1's.

    Rows equal to a splitter all go to one rank, so a heavily repeated key makes that rank large;
    call `DTable.rebalance()` afterwards when even partitions matter more than key locality.
    """
    table = local_sort(table, by, ascending)
    if comm.size == 1:
        return table
    keys = table.select(list(by))
    splitters = choose_splitters(comm, keys, ascending)
    bounds = [0] + [_lower_bound(keys, s, ascending) for s in splitters]
    bounds += [table.num_rows] * (comm.size + 1 - len(bounds))
    pieces = [table.slice(bounds[r], bounds[r + 1] - bounds[r]) for r in range(comm.size)]
    return local_sort(exchange(comm, pieces, table.schema), by, ascending)
