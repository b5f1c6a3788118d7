"""Communicator.alltoallv_buffers on 2 and 3 real ranks: MPI point-to-point and the generic (gloo) path."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import PY, mpiexec, run

PROG = str(Path(__file__).parent / "programs" / "buffers.py")


@pytest.mark.parametrize("backend", ["mpi", "gloo"])
@pytest.mark.parametrize("ranks", [2, 3])
def test_alltoallv_buffers(rank_env, backend, ranks):
    """Empty, small and >16 MiB messages of every buffer type, in default and in small chunks."""
    r = run(mpiexec(ranks, [PY, PROG, backend]), rank_env)
    assert r.rc == 0, r.out + r.err
    for rank in range(ranks):
        assert f"buffers ok rank {rank} of {ranks} backend {backend}" in r.out, r.out + r.err


def test_alltoallv_buffers_dead_peer_is_an_error(rank_env):
    """A peer that dies with messages owed: every survivor raises within the timeout, nobody hangs."""
    r = run(mpiexec(3, [PY, PROG, "mpi", "kill"]), rank_env, timeout=200)
    assert r.rc != 0
    assert "rank 1 exits on purpose" in r.err
    for rank in (0, 2):
        assert f"deeprc.comm: rank {rank} of 3" in r.err, r.err[-3000:]
    assert "in alltoallv_buffers on the mpi backend" in r.err, r.err[-3000:]
    assert "unreachable" not in r.out + r.err
