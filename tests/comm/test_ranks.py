"""Every collective on 2 and 3 real ranks (oversubscribed) under mpiexec and srun."""

from __future__ import annotations

import pytest

from .conftest import PY, SELFTEST, mpiexec, run, srun


# 2 ranks with gloo under mpiexec: tests/comm/test_failures.py runs it through `deeprc-deploy comm test`.
@pytest.mark.parametrize("backend, ranks", [("mpi", 2), ("mpi", 3), ("gloo", 3)])
def test_mpiexec_selftest(rank_env, backend, ranks):
    r = run(mpiexec(ranks, [*SELFTEST, "--backend", backend, "--timeout", "60"]), rank_env)
    assert r.rc == 0, r.out + r.err
    assert f"PASSED: 20 checks on {ranks} ranks" in r.out
    assert f"backend {backend}, launcher mpiexec" in r.out


@pytest.mark.slurm
@pytest.mark.parametrize("ranks", [2, 3])
def test_srun_gloo_from_slurm_variables(slurm, ranks):
    """No PMI for MPI here: Gloo meets through SLURM_* (node list + job/step id port) alone.

    2 ranks go through `deeprc-deploy comm test --launcher srun`, 3 through srun directly.
    """
    import sys

    env = dict(slurm["env"])
    env.pop("DEEPRC_COMM_TIMEOUT", None)
    if ranks == 2:
        cmd = [sys.executable, "-m", "deeprc.cli", "comm", "test", "--ranks", "2", "--backend", "gloo",
               "--launcher", "srun", "--timeout", "60"]
    else:
        cmd = srun(ranks, [*SELFTEST, "--backend", "gloo", "--timeout", "60"])
    r = run(cmd, env)
    assert r.rc == 0, r.out + r.err
    assert f"PASSED: 20 checks on {ranks} ranks" in r.out
    assert "backend gloo, launcher srun" in r.out


@pytest.mark.slurm
@pytest.mark.parametrize("ranks", [2, 3])
def test_srun_mpi_through_pmix(slurm, ranks):
    """MPI ranks started by srun (Slurm's PMIx server, the pip Open MPI as client); auto picks mpi."""
    env = dict(slurm["env"])
    env.pop("DEEPRC_COMM_TIMEOUT", None)
    backend = "mpi" if ranks == 2 else "auto"
    r = run(srun(ranks, [*SELFTEST, "--backend", backend, "--timeout", "60"], mpi="pmix"), env)
    assert r.rc == 0, r.out + r.err
    assert f"PASSED: 20 checks on {ranks} ranks" in r.out
    assert "backend mpi, launcher srun" in r.out


@pytest.mark.slurm
def test_srun_auto_and_mpi_without_pmi(slurm):
    """auto falls back to Gloo under srun --mpi=none; an explicit mpi says how to fix it."""
    env = dict(slurm["env"])
    r = run(srun(2, [*SELFTEST, "--backend", "auto", "--timeout", "60"]), env)
    assert r.rc == 0, r.out + r.err
    assert "backend gloo, launcher srun" in r.out
    r = run(srun(2, [*SELFTEST, "--backend", "mpi", "--timeout", "60"]), env)
    assert r.rc != 0
    assert "srun --mpi=pmix" in r.err and "backend='gloo'" in r.err


def test_from_mpi_under_raptor_variables(rank_env):
    from .conftest import PY

    prog = str(__import__("pathlib").Path(__file__).parent / "programs" / "from_mpi.py")
    r = run(mpiexec(2, [PY, prog]), {**rank_env, "RP_TASK_ID": "task.000000"})
    assert r.rc == 0, r.out + r.err
    assert r.out.count("from_mpi ok") == 2 and "launcher=raptor" in r.out


SINGLE = """
import numpy as np, deeprc.comm as dc
c = dc.init()
assert (c.backend, c.launcher, c.rank, c.size, c.num_nodes) == ("mpi", "single", 0, 1, 1), c
assert c.allreduce(np.arange(3.0), "mean").tolist() == [0.0, 1.0, 2.0] and c.alltoallv([b"x"]) == [b"x"]
g = dc.init("gloo")
assert (g.backend, g.size) == ("gloo", 1) and g.allreduce(3, "max") == 3 and g.gather("a") == ["a"]
try:
    dc.init("nccl")
except dc.DeepRCError as e:
    print("nccl:", e)
print("single ok")
"""


def test_single_process_without_launcher(rank_env):
    from .conftest import PY

    env = {k: v for k, v in rank_env.items() if not k.startswith(("OMPI_COMM", "PMI", "SLURM_", "RANK", "WORLD_SIZE"))}
    r = run([PY, "-c", SINGLE], env)
    assert r.rc == 0, r.out + r.err
    assert "single ok" in r.out


@pytest.mark.parametrize("limit", ["0", str(1 << 30)])
def test_mpi_allreduce_both_paths(rank_env, limit):
    """Iallreduce everywhere (0) and arrival-checked blocking Allreduce everywhere (1 GiB): same answers."""
    r = run(mpiexec(3, [*SELFTEST, "--backend", "mpi", "--timeout", "60"]), {**rank_env, "DEEPRC_MPI_BLOCKING_MAX": limit})
    assert r.rc == 0, r.out + r.err
    assert "PASSED: 20 checks on 3 ranks" in r.out


def test_mpi_blocking_max_must_be_a_byte_count(rank_env):
    r = run([PY, "-c", "import deeprc.comm.mpi_backend"], {**rank_env, "DEEPRC_MPI_BLOCKING_MAX": "4MB"})
    assert r.rc != 0 and "DEEPRC_MPI_BLOCKING_MAX='4MB' is not a whole number >= 0" in r.err and "Fix:" in r.err
