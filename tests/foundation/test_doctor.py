"""doctor against the real tools of this machine, with tools really present or really absent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

VENV = Path(sys.executable).parent.parent
KEYS = {"python", "deeprc", "mpi", "mpi_hello", "mpi4py", "srun", "radical_pilot", "torch", "tensorflow",
        "pyarrow", "pycylon", "apptainer", "singularity", "podman", "docker", "charliecloud", "sbatch", "qsub",
        "bsub", "flux", "site", "image"}


def run_doctor(*args: str, python: Path | str = sys.executable, path: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    return subprocess.run([str(python), "-m", "deeprc.cli", "doctor", *args], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def report() -> dict:
    proc = run_doctor("--json")
    assert proc.stdout, proc.stderr
    return json.loads(proc.stdout)


def test_json_has_stable_keys(report: dict) -> None:
    assert set(report) == {"deeprc_version", "host", "site", "ok", "checks"}
    assert set(report["checks"]) == KEYS
    for name, check in report["checks"].items():
        assert set(check) == {"status", "detail", "hint", "version", "required"}, name
        assert check["status"] in {"ok", "missing", "broken"}, name


def test_real_stack_is_found(report: dict) -> None:
    checks = report["checks"]
    import mpi4py
    import pyarrow
    import torch

    assert checks["mpi4py"]["status"] == "ok" and checks["mpi4py"]["version"] == mpi4py.__version__
    assert checks["torch"]["version"] == torch.__version__
    assert checks["pyarrow"]["version"] == pyarrow.__version__
    assert checks["mpi"]["version"].startswith("Open MPI")
    assert checks["mpi_hello"]["status"] == "ok"
    assert checks["tensorflow"]["status"] == "ok"
    assert checks["radical_pilot"]["status"] == "ok"
    # No GPU on CI: the torch line must say so rather than pretend.
    assert "gpus=0" in checks["torch"]["detail"] or "cuda=yes" in checks["torch"]["detail"]


@pytest.fixture(scope="module")
def venv_without_mpiexec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same venv, but a bin folder with only the interpreter: no mpiexec anywhere on PATH."""
    root = tmp_path_factory.mktemp("venv-no-mpi")
    (root / "bin").mkdir()
    (root / "bin" / "python").symlink_to(os.path.realpath(VENV / "bin" / "python"))
    (root / "lib").symlink_to(VENV / "lib")
    (root / "pyvenv.cfg").write_text((VENV / "pyvenv.cfg").read_text())
    return root


def _path_without(tool: str, extra: list[str] | None = None) -> str:
    keep = []
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry and not (Path(entry) / tool).exists() and Path(entry) != VENV / "bin":
            keep.append(entry)
    return os.pathsep.join((extra or []) + keep)


def test_missing_mpiexec_is_reported_and_fails(venv_without_mpiexec: Path) -> None:
    proc = run_doctor("--json", python=venv_without_mpiexec / "bin" / "python", path=_path_without("mpiexec"))
    report = json.loads(proc.stdout)
    assert report["checks"]["mpi"]["status"] == "missing"
    assert "openmpi" in report["checks"]["mpi"]["hint"]
    assert report["checks"]["mpi_hello"]["status"] == "missing"
    assert report["ok"] is False and proc.returncode == 1


def test_broken_mpiexec_is_broken(venv_without_mpiexec: Path, tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    broken = fake_bin / "mpiexec"
    broken.write_text("#!/bin/sh\necho 'mpiexec (Open MPI) 5.0.0'\n[ \"$1\" = --version ] && exit 0\n"
                      "echo 'PRTE has lost communication' >&2\nexit 1\n")
    broken.chmod(0o755)
    path = _path_without("mpiexec", [str(fake_bin)])
    proc = run_doctor("--json", python=venv_without_mpiexec / "bin" / "python", path=path)
    checks = json.loads(proc.stdout)["checks"]
    assert checks["mpi"]["status"] == "ok"
    assert checks["mpi_hello"]["status"] == "broken"
    assert "lost communication" in checks["mpi_hello"]["detail"]
    assert proc.returncode == 1


def test_container_runtime_client_without_engine_is_broken(report: dict) -> None:
    import shutil

    docker = report["checks"]["docker"]
    if shutil.which("docker") is None:
        assert docker["status"] == "missing"
    else:
        rc = subprocess.run(["docker", "info"], capture_output=True).returncode
        assert docker["status"] == ("ok" if rc == 0 else "broken")


def test_table_output_and_version() -> None:
    proc = subprocess.run([sys.executable, "-m", "deeprc.cli", "--version"], capture_output=True, text=True)
    import deeprc

    assert proc.returncode == 0 and deeprc.__version__ in proc.stdout
    proc = run_doctor()
    assert "mpi4py" in proc.stdout and "required" in proc.stdout


def test_container_site_needs_only_the_client_runtime_and_image_on_the_host(tmp_path: Path) -> None:
    """With a container runtime the frameworks and MPI live in the image: the host must have the client,
    Radical Pilot, the runtime and the image; a missing image fails doctor with the build command."""
    import yaml

    repo = Path(__file__).resolve().parents[2]
    data = yaml.safe_load((repo / "site-configs" / "emulated-cluster.yaml").read_text())
    data["container"] = {"runtime": "charliecloud", "image": str(tmp_path / "img")}
    site = tmp_path / "ch.yaml"
    site.write_text(yaml.safe_dump(data))
    checks = json.loads(run_doctor("--json", "--site", str(site)).stdout)["checks"]
    required = {name for name, c in checks.items() if c["required"]}
    assert {"python", "deeprc", "radical_pilot", "charliecloud", "image", "sbatch", "srun"} <= required
    assert not required & {"torch", "tensorflow", "pyarrow", "mpi4py", "mpi", "mpi_hello"}, required
    assert checks["image"]["status"] == "missing" and "deeprc-deploy build --site" in checks["image"]["hint"]
    (tmp_path / "img").mkdir()
    checks = json.loads(run_doctor("--json", "--site", str(site)).stdout)["checks"]
    assert checks["image"]["status"] == "broken" and "ch/environment" in checks["image"]["detail"]
    (tmp_path / "img" / "ch").mkdir()
    (tmp_path / "img" / "ch" / "environment").write_text("PATH=/usr/bin\n")
    checks = json.loads(run_doctor("--json", "--site", str(site)).stdout)["checks"]
    assert checks["image"]["status"] == "ok"
