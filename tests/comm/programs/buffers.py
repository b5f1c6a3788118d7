"""Rank program: Communicator.alltoallv_buffers against a reference every rank computes alone.

    python buffers.py BACKEND [kill]

Every (source, destination) pair gets its own size (some empty, one over 16 MiB) and buffer type
(bytes, pa.Buffer, an int32 numpy array, a memoryview); the exchange runs with the default chunk
size, with 4 MiB + 1 byte chunks and (small messages only) with 1000-byte chunks.
`kill`: rank 1 announces its sizes, then dies before sending.
"""

import os
import sys
import time

import numpy as np
import pyarrow as pa

import deeprc.comm as dc

BIG = (16 << 20) + 4 * 12345  # over 16 MiB, a multiple of 4 so it can be an int32 array


def size(src: int, dst: int, n: int, big: bool = True) -> int:
    if (src + 2 * dst) % 3 == 0:
        return 0
    if (src, dst) == (0, n - 1) and big:
        return BIG
    return 4 * (1 + src + 5 * dst) * 251


def payload(src: int, dst: int, n: int, big: bool = True) -> bytes:
    rng = np.random.default_rng([src, dst])
    return rng.integers(0, 256, size(src, dst, n, big), dtype=np.uint8).tobytes()


def as_kind(data: bytes, kind: int):
    if kind == 0:
        return data
    if kind == 1:
        return pa.py_buffer(data)
    if kind == 2:
        return np.frombuffer(data, np.int32).copy()
    return memoryview(bytearray(data))


backend = sys.argv[1]
comm = dc.init(backend, timeout=10 if "kill" in sys.argv else 60)
r, n = comm.rank, comm.size

if "kill" in sys.argv:
    if r == 1:  # take part in the size exchange, then vanish with messages still owed
        from mpi4py import MPI

        counts = np.full(n, 1 << 20, dtype=np.int64)
        comm.mpi.Ialltoall([counts, MPI.INT64_T], [np.empty(n, np.int64), MPI.INT64_T]).Wait()
        print("rank 1 exits on purpose", file=sys.stderr, flush=True)
        os._exit(3)
    from deeprc.errors import DeepRCError

    try:
        comm.alltoallv_buffers([b"x" * 10] * n)
    except DeepRCError:  # already printed by the communicator; wait so a later survivor reports too
        time.sleep(5)
        raise SystemExit(1)
    raise SystemExit("unreachable: the exchange with a dead rank returned")

# default chunks; 4 MiB + 1 byte chunks (the big message in 5 pieces); 1000-byte chunks (no big message)
for chunk, big in (({}, True), ({"chunk_bytes": (4 << 20) + 1}, True), ({"chunk_bytes": 1000}, False)):
    sent = [as_kind(payload(r, d, n, big), (r + d) % 4) for d in range(n)]
    got = comm.alltoallv_buffers(sent, **chunk)
    assert len(got) == n, got
    for src, view in enumerate(got):
        assert isinstance(view, memoryview), type(view)
        assert bytes(view) == payload(src, r, n, big), (src, r, len(view), size(src, r, n, big), chunk)
    mine = np.frombuffer(got[r], np.uint8)
    if len(mine):
        assert np.shares_memory(mine, np.frombuffer(sent[r], np.uint8)), "own buffer was copied"
    comm.barrier()

# the plain bytes contract of alltoallv is unchanged
out = comm.alltoallv([payload(r, d, n)[:100] for d in range(n)])
assert all(type(b) is bytes for b in out) and out == [payload(s, r, n)[:100] for s in range(n)]
print(f"buffers ok rank {r} of {n} backend {comm.backend}", flush=True)
comm.close()
