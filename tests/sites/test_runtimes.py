"""Container runtimes: command lines per runtime, and real podman ranks in the hybrid model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deeprc.errors import DeepRCError
from deeprc.runtimes import get_runtime, rank_command
from deeprc.sites import validate_site

BASE = {"scheduler": "local", "launcher": "mpiexec"}


def site(**over: object):  # noqa: ANN201
    return validate_site({**BASE, **over}, "test.yaml")


def test_runtime_lines() -> None:
    s = site(container={"runtime": "apptainer", "image": "/i.sif", "binds": ["/scratch"]})
    assert get_runtime("apptainer").exec_command("/i.sif", ["p"], binds=["/run"], gpus=True, site=s) == [
        "apptainer", "exec", "--nv", "--bind", "/scratch", "--bind", "/run", "/i.sif", "p"]
    s = site(container={"runtime": "singularity", "image": "/i.sif", "gpu_flag": "--rocm"})
    assert get_runtime("singularity").exec_command("/i.sif", ["p"], gpus=True, site=s)[:3] == ["singularity", "exec", "--rocm"]
    d = get_runtime("docker").exec_command("img", ["p"], gpus=True, site=site(container={"runtime": "docker", "image": "img"}))
    assert d[:3] == ["docker", "run", "--rm"] and "--gpus" in d
    sh = get_runtime("shifter").exec_command("img:1", ["p"], binds=["/a"], gpus=True, site=None)
    assert sh == ["shifter", "--image=img:1", "--module=gpu", "--volume=/a:/a", "p"]
    with pytest.raises(DeepRCError, match="did you mean 'podman'"):
        get_runtime("podmn")


def test_bind_model_and_gpu_visibility() -> None:
    s = site(
        scheduler="slurm", launcher="srun", gpu_binding="local-rank",
        partitions={"g": {"nodes": 1, "cores_per_node": 8, "gpus_per_node": 4}},
        container={"runtime": "apptainer", "image": "/i.sif"},
        mpi={"flavour": "cray-mpich", "pmi": "pmi2", "model": "bind", "host_paths": ["/opt/cray/mpich"]},
    )
    argv = rank_command(s, 4, ["python", "x.py"], gpus_per_rank=1)
    assert argv[:3] == ["srun", "--ntasks=4", "--mpi=pmi2"] and "--gpus-per-task=1" not in argv
    i = argv.index("sh")
    assert argv[i + 3:i + 5] == ["deeprc-gpu", "1"] and argv[i + 5:i + 7] == ["apptainer", "exec"]
    assert "--bind" in argv and "/opt/cray/mpich" in argv and "LD_LIBRARY_PATH=/opt/cray/mpich/lib" in argv


def test_gpu_visibility_wrapper_runs() -> None:
    """The local-rank snippet really gives local rank 1 with 2 GPUs per rank the devices 2,3."""
    from deeprc.runtimes import gpu_visibility_wrapper

    env = {**os.environ, "SLURM_LOCALID": "1"}
    env.pop("OMPI_COMM_WORLD_LOCAL_RANK", None)
    out = subprocess.run([*gpu_visibility_wrapper(2), "sh", "-c", "echo $CUDA_VISIBLE_DEVICES $ROCR_VISIBLE_DEVICES"],
                         capture_output=True, text=True, env=env, timeout=30).stdout
    assert out.split() == ["2,3", "2,3"]


@pytest.mark.podman
def test_podman_ranks_hybrid(podman_base: str, tmp_path: Path, mpi_env: dict) -> None:
    """mpiexec starts 2 ranks, each a podman container that sees its rank, the binds and the env."""
    (tmp_path / "in.txt").write_text("from the host")
    s = site(launcher_args=["--oversubscribe"], container={"runtime": "podman", "image": podman_base},
             environment={"E_VALUE": "a b $(not run)"})
    script = 'echo "rank=$OMPI_COMM_WORLD_RANK size=$OMPI_COMM_WORLD_SIZE $(cat {d}/in.txt) [$E_VALUE]"'.format(d=tmp_path)
    argv = rank_command(s, 2, ["sh", "-c", script], binds=[str(tmp_path)])
    argv[0] = str(Path(sys.executable).parent / "mpiexec")
    proc = subprocess.run(argv, capture_output=True, text=True, env=mpi_env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = sorted(line for line in proc.stdout.splitlines() if line.startswith("rank="))
    assert lines == [f"rank={r} size=2 from the host [a b $(not run)]" for r in (0, 1)]
