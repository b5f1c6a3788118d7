"""Hash repartitioning: every row goes to the rank its key hashes to, in one all-to-all exchange.

Each rank cuts its rows into one piece per rank, keeps its own piece as it is and sends the others
as Arrow IPC streams (one message per destination, written once) through the communicator's
`alltoallv_buffers` (MPI: Isend/Irecv straight into the receive buffers); received streams are read
without a copy and concatenated with the own piece.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.types as pat

from deeprc.data.ipc import from_bytes

_HASH_SEED = 0x5EED

# seconds spent moving rows between ranks (partitioning + exchange), for benchmarks and reports
TIMINGS: dict[str, float] = {"partition_s": 0.0, "exchange_s": 0.0}


def chunk_bytes() -> int:
    """Largest piece one message carries (`DEEPRC_DATA_CHUNK_BYTES`, 16 MiB).

    Backends with `alltoallv_buffers` send bigger messages in pieces of this size (MPI: one
    Isend/Irecv each, all in flight at once); otherwise big exchanges go in alltoallv rounds, which
    bounds the communicator's staging copies and keeps every call short.
    """
    from deeprc.settings import env_int

    return env_int("DEEPRC_DATA_CHUNK_BYTES", 16 << 20)


def alltoallv(comm: Any, messages: list[bytes]) -> list[bytes | memoryview]:
    """`comm.alltoallv` in rounds of at most :func:`chunk_bytes` per destination."""
    chunk = chunk_bytes()
    longest = max((len(m) for m in messages), default=0)
    rounds = int(np.asarray(comm.allreduce(np.array([-(-longest // chunk)], dtype=np.int64), op="max"))[0])
    if rounds <= 1:
        return list(comm.alltoallv(messages))
    views = [memoryview(m) for m in messages]
    received: list[list[bytes]] = [[] for _ in messages]
    for i in range(rounds):
        parts = comm.alltoallv([bytes(v[i * chunk : (i + 1) * chunk]) for v in views])
        for src, part in enumerate(parts):
            if len(part):
                received[src].append(part)
    return [b"".join(parts) for parts in received]


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
        return np.zeros(0, dtype=np.uint16)
    frame = pl.from_arrow(_hashable_keys(table, keys))
    assert isinstance(frame, pl.DataFrame)
    dest = frame.hash_rows(seed=_HASH_SEED) % nparts
    return dest.cast(pl.UInt16 if nparts < 65536 else pl.UInt64).to_numpy()


# up to this many destinations a boolean filter per piece beats one stable argsort + take
# (measured, 5M rows of int64 + float64, one thread: 2 filters 0.05-0.07 s, argsort + take 0.18-0.30 s)
_FILTER_PARTS = 4


def _polars_exact(t: pa.DataType) -> bool:
    """Column types that go to polars and back unchanged and without a copy."""
    return pat.is_integer(t) or (pat.is_floating(t) and not pat.is_float16(t)) or pat.is_boolean(t)


def split_by_destination(table: pa.Table, dest: np.ndarray, nparts: int) -> list[pa.Table]:
    """Cut a table into `nparts` pieces, row i going to piece dest[i], in the input's row order."""
    if nparts == 1:
        return [table]
    if table.num_rows == 0:
        return [table] * nparts
    if nparts <= _FILTER_PARTS:
        if all(_polars_exact(f.type) for f in table.schema):
            # polars filters these column types exactly and 3-4x faster than Arrow (5M int64 +
            # float64 rows, one thread: 5 ms vs 17-20 ms); the schema (metadata too) is put back as is
            frame = pl.from_arrow(table, rechunk=False)
            assert isinstance(frame, pl.DataFrame)
            pieces = [frame.filter(pl.Series(dest == d)).to_arrow() for d in range(nparts)]
            if all(p.schema.equals(table.schema) for p in pieces):
                return [pa.Table.from_arrays(p.columns, schema=table.schema) for p in pieces]
        return [table.filter(pa.array(dest == d)) for d in range(nparts)]
    small = dest if dest.dtype == np.uint16 or nparts >= 65536 else dest.astype(np.uint16)
    order = np.argsort(small, kind="stable")
    counts = np.bincount(small, minlength=nparts)
    ordered = table.take(pa.array(order))
    pieces, start = [], 0
    for count in counts:
        pieces.append(ordered.slice(start, int(count)))
        start += int(count)
    return pieces


def _send(comm: Any, messages: list[Any]) -> list[Any]:
    """Message d to rank d, this rank's own message untouched; one buffer back per source rank."""
    direct = getattr(comm, "alltoallv_buffers", None)
    if direct is not None:
        return direct(messages, chunk_bytes=chunk_bytes())
    me = comm.rank
    out = alltoallv(comm, [b"" if d == me else bytes(m) for d, m in enumerate(messages)])
    out[me] = messages[me]
    return out


def exchange(comm: Any, pieces: list[pa.Table], schema: pa.Schema) -> pa.Table:
    """Send piece i to rank i and concatenate what every rank sent here (IPC streams, own piece kept local)."""
    return exchange_many(comm, [pieces], [schema])[0]


def _pack(tables: list[pa.Table]) -> pa.Buffer:
    """Several tables as one message: a count, the lengths of their IPC streams, then the streams.

    Sized first (a counting pass that copies nothing), then written once into a buffer from Arrow's
    memory pool (reused between shuffles, unlike fresh pages from the OS).
    """
    lengths = []
    for table in tables:
        mock = pa.MockOutputStream()
        with pa.ipc.new_stream(mock, table.schema) as writer:
            writer.write_table(table)
        lengths.append(mock.size())
    header = np.array([len(tables)] + lengths, dtype="<i8")
    message = pa.allocate_buffer(header.nbytes + sum(lengths))
    out = np.frombuffer(message, np.uint8)  # writable: the buffer is mutable
    out[: header.nbytes] = header.view(np.uint8)
    sink = pa.FixedSizeBufferWriter(pa.py_buffer(out[header.nbytes :]))
    for table in tables:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    return message


def _unpack(message: Any) -> list[memoryview]:
    view = memoryview(message).cast("B") if memoryview(message).format != "B" else memoryview(message)
    count = int(np.frombuffer(view[:8], dtype="<i8")[0])
    lengths = np.frombuffer(view[8 : 8 * (count + 1)], dtype="<i8").tolist()
    out, offset = [], 8 * (count + 1)
    for n in lengths:
        out.append(view[offset : offset + n])
        offset += n
    return out


def exchange_many(comm: Any, piece_lists: list[list[pa.Table]], schemas: list[pa.Schema]) -> list[pa.Table]:
    """Like :func:`exchange` for several tables at once, in a single exchange.

    This rank's own pieces are never serialised: they join the received ones as they are.
    """
    if comm.size == 1:
        return [pieces[0] for pieces in piece_lists]
    start = time.perf_counter()
    me = comm.rank
    messages = [b"" if dest == me else _pack([pieces[dest] for pieces in piece_lists])
                for dest in range(comm.size)]
    received = _send(comm, messages)
    del messages
    outs = []
    for j, schema in enumerate(schemas):
        tables = [piece_lists[j][me] if src == me else from_bytes(_unpack(buf)[j]) for src, buf in enumerate(received)]
        tables = [t if t.schema.equals(schema) else t.cast(schema) for t in tables]
        outs.append(pa.concat_tables(tables))
    TIMINGS["exchange_s"] += time.perf_counter() - start
    return outs


def hash_shuffle_many(comm: Any, tables: list[pa.Table], keys: Sequence[str]) -> list[pa.Table]:
    """Hash-repartition several tables on the same keys with one exchange (e.g. both sides of a join)."""
    if comm.size == 1:
        return list(tables)
    start = time.perf_counter()
    piece_lists = [split_by_destination(t, destinations(t, keys, comm.size), comm.size) for t in tables]
    TIMINGS["partition_s"] += time.perf_counter() - start
    return exchange_many(comm, piece_lists, [t.schema for t in tables])


def hash_shuffle(comm: Any, table: pa.Table, keys: Sequence[str]) -> pa.Table:
    """Repartition so that all rows with equal keys end up on the same rank."""
    if comm.size == 1:
        return table
    start = time.perf_counter()
    dest = destinations(table, keys, comm.size)
    pieces = split_by_destination(table, dest, comm.size)
    TIMINGS["partition_s"] += time.perf_counter() - start
    return exchange(comm, pieces, table.schema)
