"""DDP, Lightning and TensorFlow multi-worker training on real ranks (fresh processes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import PY, mpiexec, run

PROGRAMS = Path(__file__).parent / "programs"


@pytest.mark.slow
def test_ddp_and_lightning_leave_identical_weights(rank_env):
    r = run(mpiexec(2, [PY, str(PROGRAMS / "ddp_step.py"), "mpi"]), rank_env, timeout=400)
    assert r.rc == 0, r.out[-3000:] + r.err[-3000:]
    for rank in (0, 1):
        assert f"rank {rank}: DDP weights identical on 2 ranks" in r.out
        assert f"rank {rank}: Lightning world 2, weights identical" in r.out


@pytest.mark.slow
def test_tf_multiworker_fit_same_loss(rank_env):
    r = run(mpiexec(2, [PY, str(PROGRAMS / "tf_fit.py"), "mpi"]), rank_env, timeout=400)
    assert r.rc == 0, r.out[-3000:] + r.err[-3000:]
    reports = [json.loads(line) for line in r.out.splitlines() if line.startswith('{"rank"')]
    assert sorted(rep["rank"] for rep in reports) == [0, 1]
    workers = reports[0]["workers"]
    assert len(workers) == 2 and len(set(workers)) == 2  # one port per worker
    losses = reports[0]["losses"]
    assert len(losses) == 2 and losses[0] == losses[1] and losses[0] > 0


def test_cylon_env_without_pycylon_is_clear():
    import importlib.util

    if importlib.util.find_spec("pycylon") is not None:
        pytest.skip("pycylon is installed here")
    from deeprc.comm.cylon import cylon_env
    from deeprc.errors import DeepRCError

    with pytest.raises(DeepRCError, match="pycylon is not importable"):
        cylon_env(object())
