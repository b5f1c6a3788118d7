"""Hash repartitioning: every row goes to the rank its key hashes to, through one alltoallv."""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.types as pat

from deeprc.data.ipc import from_bytes, to_bytes

_HASH_SEED = 0x5EED

# seconds spent moving rows between ranks (partitioning + exchange), for benchmarks and reports
TIMINGS: dict[str, float] = {"partition_s": 0.0, "exchange_s": 0.0}


def reset_timings() -> None:
    """Zero the shuffle timers."""
    for key in TIMINGS:
        TIMINGS[key] = 0.0


def _hashable_keys(table: pa.Table, keys: Sequence[str]) -> pa.Table:
    """The key columns in a canonical type, so equal values hash equally on every rank and side."""
    cols = []
    for name in keys:
        col = table.column(name)
        t = col.type
        if pat.is_dictionary(t):
            col = col.cast(t.value_type)
            t = t.value_type
        if pat.is_integer(t) or pat.is_boolean(t):
            col = col.cast(pa.int64())
        elif pat.is_floating(t) or pat.is_decimal(t):
            col = col.cast(pa.float64())
        elif pat.is_string(t) or pat.is_large_string(t) or pat.is_string_view(t):
            col = col.cast(pa.large_string())
        cols.append(col)
    return pa.table(cols, names=[f"k{i}" for i in range(len(cols))])


def destinations(table: pa.Table, keys: Sequence[str], nparts: int) -> np.ndarray:
    """The destination rank (0..nparts-1) of every row, from a stable hash of its key columns."""
    if table.num_rows == 0:
        return np.zeros(0, dtype=np.int64)
    frame = pl.from_arrow(_hashable_keys(table, keys))
    assert isinstance(frame, pl.DataFrame)
    hashes = frame.hash_rows(seed=_HASH_SEED).to_numpy()
    return (hashes % np.uint64(nparts)).astype(np.int64)


def split_by_destination(table: pa.Table, dest: np.ndarray, nparts: int) -> list[pa.Table]:
    """Cut a table into `nparts` pieces, row i going to piece dest[i] (one take, then zero-copy slices)."""
    if nparts == 1:
        return [table]
    small = dest.astype(np.uint16 if nparts < 65536 else np.int64)
    order = np.argsort(small, kind="stable")
    counts = np.bincount(small, minlength=nparts)
    ordered = table.take(pa.array(order)) if table.num_rows else table
    pieces, start = [], 0
    for count in counts:
        pieces.append(ordered.slice(start, int(count)))
        start += int(count)
    return pieces


def exchange(comm: Any, pieces: list[pa.Table], schema: pa.Schema) -> pa.Table:
    """Send piece i to rank i and concatenate what every rank sent here (all-to-all of IPC bytes)."""
    if comm.size == 1:
        return pieces[0]
    start = time.perf_counter()
    received = comm.alltoallv([to_bytes(piece) for piece in pieces])
    tables = [from_bytes(buf) for buf in received]
    tables = [t if t.schema.equals(schema) else t.cast(schema) for t in tables]
    out = pa.concat_tables(tables) if tables else schema.empty_table()
    TIMINGS["exchange_s"] += time.perf_counter() - start
    return out


def hash_shuffle(comm: Any, table: pa.Table, keys: Sequence[str]) -> pa.Table:
    """Repartition so that all rows with equal keys end up on the same rank."""
    if comm.size == 1:
        return table
    start = time.perf_counter()
    dest = destinations(table, keys, comm.size)
    pieces = split_by_destination(table, dest, comm.size)
    TIMINGS["partition_s"] += time.perf_counter() - start
    return exchange(comm, pieces, table.schema)
