"""A dead rank becomes a clear error on the survivors within the timeout; the CLI fails on a mismatch."""

from __future__ import annotations

import sys

import pytest

from .conftest import SELFTEST, mpiexec, run

TIMEOUT = 10


@pytest.mark.parametrize("backend", ["mpi", "gloo"])
def test_killed_rank_is_reported_by_every_survivor(rank_env, backend):
    env = {**rank_env, "DEEPRC_SELFTEST_KILL_RANK": "1"}
    r = run(mpiexec(3, [*SELFTEST, "--backend", backend, "--timeout", str(TIMEOUT)]), env, timeout=200)
    assert r.rc != 0
    assert "rank 1 exits on purpose" in r.err
    for rank in (0, 2):
        assert f"deeprc.comm: rank {rank} of 3" in r.err, r.err[-3000:]
    assert "a rank died, hung or took a different code path" in r.err
    # mpi: the watchdog fired at the deadline; gloo: the peer's closed socket was seen at once
    assert (f"waited {TIMEOUT} s in" if backend == "mpi" else "lost contact with another rank") in r.err
    assert "PASSED" not in r.out


def _cli(args: list[str], env: dict[str, str]):
    return run([sys.executable, "-m", "deeprc.cli", "comm", "test", *args], env, timeout=300)


def test_cli_comm_test_passes_and_fails_on_a_corrupted_reference(rank_env):
    ok = _cli(["--ranks", "2", "--backend", "gloo", "--timeout", "60"], rank_env)
    assert ok.rc == 0, ok.out + ok.err
    assert "PASSED: 20 checks on 2 ranks" in ok.out
    bad = _cli(["--ranks", "2", "--backend", "gloo", "--timeout", "60"],
               {**rank_env, "DEEPRC_SELFTEST_CORRUPT": "allreduce sum"})
    assert bad.rc != 0
    assert "FAIL" in bad.out and "allreduce sum numpy float64" in bad.out
    assert "3 of 20 checks disagree" in bad.out  # sum on numpy float64, numpy int64 and torch


def test_cli_dry_run_and_bad_timeout(rank_env):
    dry = _cli(["--ranks", "3", "--backend", "mpi", "--dry-run"], rank_env)
    assert dry.rc == 0 and " -n 3 " in dry.out and "deeprc.comm.selftest --backend mpi" in dry.out
    bad = _cli(["--timeout", "-5"], rank_env)
    assert bad.rc == 2 and "--timeout" in bad.err
