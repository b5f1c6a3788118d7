"""Launcher detection, rendezvous helpers and argument checks (no ranks started)."""

from __future__ import annotations

import pytest

from deeprc.comm.rankenv import detect
from deeprc.comm.rendezvous import agree_endpoint, parse_first_host, slurm_port
from deeprc.comm.timeouts import resolve_timeout
from deeprc.errors import DeepRCError


@pytest.mark.parametrize(
    "env, launcher, rank, size, local",
    [
        ({"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "0",
          "OMPI_COMM_WORLD_LOCAL_SIZE": "2", "SLURM_PROCID": "0", "SLURM_STEP_ID": "1"}, "mpiexec", 2, 4, 0),
        ({"SLURM_PROCID": "3", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "8", "SLURM_NTASKS": "16",
          "SLURM_LOCALID": "1", "SLURM_STEP_TASKS_PER_NODE": "4(x2)", "SLURM_STEP_NUM_NODES": "2"}, "srun", 3, 8, 1),
        ({"PMI_RANK": "1", "PMI_SIZE": "3", "MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "3"}, "mpiexec", 1, 3, 1),
        ({"PMIX_RANK": "5"}, "mpiexec", 5, None, None),
        ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}, "torchrun", 1, 2, 1),
        ({"SLURM_PROCID": "0", "SLURM_JOB_ID": "9"}, "single", 0, 1, 0),  # a batch script, not a step
        ({}, "single", 0, 1, 0),
    ],
)
def test_detect(env, launcher, rank, size, local):
    got = detect(env)
    assert (got.launcher, got.rank, got.size, got.local_rank) == (launcher, rank, size, local)


def test_detect_slurm_details():
    env = {"SLURM_PROCID": "0", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "6", "SLURM_TASKS_PER_NODE": "3(x2)",
           "SLURM_NNODES": "2"}
    got = detect(env)
    assert (got.size, got.local_size, got.num_nodes, got.mpi_wired) == (6, 3, 2, False)
    assert detect({**env, "PMIX_RANK": "0"}).mpi_wired


@pytest.mark.parametrize(
    "nodelist, first",
    [("nid[0007-0009,12],gpu1", "nid0007"), ("node3", "node3"), ("a,b", "a"), ("c[2,5]-ib", "c2-ib")],
)
def test_parse_first_host(nodelist, first):
    assert parse_first_host(nodelist) == first


def test_slurm_port_is_shared_and_in_range():
    a = slurm_port({"SLURM_JOB_ID": "123", "SLURM_STEP_ID": "4"})
    assert a == slurm_port({"SLURM_JOB_ID": "123", "SLURM_STEP_ID": "4"})
    assert a != slurm_port({"SLURM_JOB_ID": "123", "SLURM_STEP_ID": "5"})
    assert 15000 <= a < 30000


def test_timeout_resolution(monkeypatch):
    monkeypatch.delenv("DEEPRC_COMM_TIMEOUT", raising=False)
    assert resolve_timeout(None) == 120.0
    assert resolve_timeout(7) == 7.0
    monkeypatch.setenv("DEEPRC_COMM_TIMEOUT", "33")
    assert resolve_timeout(None) == 33.0
    monkeypatch.setenv("DEEPRC_COMM_TIMEOUT", "soon")
    with pytest.raises(DeepRCError, match="DEEPRC_COMM_TIMEOUT"):
        resolve_timeout(None)
    with pytest.raises(DeepRCError, match="positive"):
        resolve_timeout(-1)


def test_no_rendezvous_is_a_clear_error(monkeypatch):
    for var in ("MASTER_ADDR", "MASTER_PORT", "DEEPRC_COMM_ADDR"):
        monkeypatch.delenv(var, raising=False)
    env = detect({"PMIX_RANK": "0", "PMIX_SIZE": "2"})
    env = type(env)("mpiexec", 0, 2)
    with pytest.raises(DeepRCError, match="DEEPRC_COMM_ADDR"):
        agree_endpoint(env, None)
    monkeypatch.setenv("DEEPRC_COMM_ADDR", "nohostport")
    with pytest.raises(DeepRCError, match="host:port"):
        agree_endpoint(env, None)


def test_bad_backend_is_a_clear_error():
    import deeprc.comm as dc

    with pytest.raises(DeepRCError, match="unknown backend 'mpich'"):
        dc.init("mpich")


def test_lightning_environment_survives_hparam_handling():
    """Lightning deep-copies a model's init arguments (the DDP strategy included) and pickles them
    to clean them; an MPI sub-communicator, as a raptor worker's, can be neither."""
    import copy

    from mpi4py import MPI

    import deeprc.comm
    from deeprc.comm.lightning_env import DeepRCEnvironment

    env = DeepRCEnvironment(deeprc.comm.init())
    env.comm = MPI.COMM_WORLD.Dup()  # not a predefined handle: mpi4py refuses to pickle it
    try:
        with pytest.raises(ValueError, match="cannot serialize"):
            copy.deepcopy(env.comm)
        assert copy.deepcopy({"strategy": [env]})["strategy"][0] is env
        from pytorch_lightning.utilities.parsing import is_picklable

        assert not is_picklable(env)  # Lightning drops it from the hparams instead of failing
    finally:
        env.comm.Free()
