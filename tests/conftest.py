"""Session fixtures shared by every test area: real Slurm and podman, started once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "tests" / "infra"
VENV_BIN = Path(sys.executable).parent
HERE = REPO / "tests" / "pipeline"  # pipeline_stagefns.py: stage functions of the runtime's tests


def _run_infra(script: str, timeout: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(INFRA / script)], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def mpi_env() -> dict[str, str]:
    """Environment for launching Open MPI ranks here (root, oversubscribed)."""
    env = dict(os.environ)
    env.update(
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        OMPI_MCA_rmaps_base_oversubscribe="1",
        PRTE_MCA_rmaps_default_mapping_policy=":oversubscribe",
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


@pytest.fixture(scope="session")
def slurm() -> dict:
    """A real single-node Slurm (Debian slurm-wlm + munge), started by tests/infra/slurm.sh."""
    if os.geteuid() != 0:
        pytest.skip("real Slurm needs root to install and start slurmctld/slurmd (tests/infra/slurm.sh)")
    proc = _run_infra("slurm.sh", timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"tests/infra/slurm.sh failed:\n{proc.stdout}\n{proc.stderr}")
    node = proc.stdout.strip().split()[-1]
    env = dict(os.environ)
    env.update(
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return {"node": node, "partition": "debug", "cpus": os.cpu_count() or 1, "env": env}


@pytest.fixture(scope="session")
def cluster() -> dict:
    """The emulated multi-node Slurm (tests/infra/cluster.sh): node1, node2, 2 cores each.

    Started once and left running (it is shared with benchmarks and other sessions); its
    commands need SLURM_CONF, which is set in ``env`` only, never in this process.
    """
    if os.geteuid() != 0:
        pytest.skip("the emulated cluster needs root for network namespaces and mounts (tests/infra/cluster.sh)")
    proc = _run_infra("cluster.sh", timeout=600)
    ready = [line.split() for line in proc.stdout.splitlines() if line.startswith("CLUSTER_READY ")]
    if proc.returncode != 0 or not ready:
        pytest.fail(f"tests/infra/cluster.sh failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    conf, nodes = ready[-1][1], ready[-1][2:]
    env = dict(os.environ)
    for var in ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME", "DEEPRC_COMM_ADDR", "SLURM_JOB_ID", "SLURM_JOBID"):
        env.pop(var, None)
    env.update(
        SLURM_CONF=conf,
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return {"conf": conf, "nodes": nodes, "partition": "mn", "cores_per_node": 2, "env": env,
            "site": str(REPO / "site-configs" / "emulated-cluster.yaml")}


@pytest.fixture(scope="session")
def podman_base() -> str:
    """podman configured for this machine and the base image made with debootstrap."""
    if os.geteuid() != 0:
        pytest.skip("podman image builds here need root (tests/infra/podman.sh)")
    proc = _run_infra("podman.sh", timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"tests/infra/podman.sh failed:\n{proc.stdout}\n{proc.stderr}")
    assert shutil.which("podman"), "podman.sh succeeded but podman is not on PATH"
    return proc.stdout.strip().split()[-1]


# ---- one DeepRC image per test session (podman), shared by tests/containers and tests/cluster ----

IMAGE_TAG = "localhost/deeprc:ci-cpu"  # stable, so podman's layer cache serves later sessions
LOCAL_WHEELS = Path("/opt/wheels")  # this machine's CPU torch wheel (PyPI's torch is the CUDA build)
EXTRA_CAS = Path("/usr/local/share/ca-certificates")  # a TLS proxy's CA, if the host has one
# the unpacked image for Charliecloud: /var/tmp is shared with the emulated cluster's nodes
IMAGE_DIR = Path(os.environ.get("DEEPRC_TEST_IMAGE_DIR", "/var/tmp/deeprc-images/ci-cpu"))


def build_cmd(base: str, tag: str, meta: Path, *extra: str) -> list[str]:
    cmd = [str(VENV_BIN / "deeprc-deploy"), "build", "--variant", "cpu", "--runtime", "podman", "--base", base,
           "--tag", tag, "--metadata", str(meta), *extra]
    if LOCAL_WHEELS.is_dir():  # torch from the local wheel, so no PyTorch index is needed
        cmd += ["--wheels", str(LOCAL_WHEELS), "--build-arg", "TORCH_INDEX_URL="]
    for cert in sorted(EXTRA_CAS.glob("*.crt")):
        cmd += ["--ca-cert", str(cert)]
    return cmd


@pytest.fixture(scope="session")
def image_build_cmd():
    return build_cmd


@pytest.fixture(scope="session")
def built_image(podman_base, tmp_path_factory) -> dict:
    """`deeprc-deploy build --variant cpu` with podman (once per session); returns the metadata record."""
    from deeprc.images.store import image_record

    meta = tmp_path_factory.mktemp("image") / "images.json"
    proc = subprocess.run(build_cmd(podman_base, IMAGE_TAG, meta), cwd=REPO, capture_output=True, text=True,
                          timeout=2600)
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, f"build failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-4000:]}"
    record = image_record("cpu", meta)
    record["stdout"] = proc.stdout
    return record


@pytest.fixture(scope="session")
def image_dir(built_image) -> Path:
    """The built image unpacked for Charliecloud (`python -m deeprc.runtimes.charliecloud unpack`, the step
    `build --runtime charliecloud` runs), with mount points for the repository and the test folders."""
    cmd = [sys.executable, "-m", "deeprc.runtimes.charliecloud", "unpack", built_image["ref"], str(IMAGE_DIR),
           "--mount-point", str(REPO.parent), "--mount-point", "/var/tmp"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"unpack failed:\n{proc.stdout}\n{proc.stderr}"
    return IMAGE_DIR


# ---- one Radical Pilot session + pilot for the pipeline and hostile-input tests ----

@pytest.fixture(scope="session")
def stagefns_on_path():
    """Make tests/pipeline/pipeline_stagefns.py importable in fresh processes and on RP workers."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), *([old] if old else [])])
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    yield
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


@pytest.fixture(scope="session")
def pilot(stagefns_on_path, tmp_path_factory):
    """A started local.localhost pilot (8 virtual cores, a 4-rank raptor MPI worker)."""
    from deeprc.rp.reaping import own_pids
    from deeprc.rp.session import Pilot

    base = tmp_path_factory.mktemp("rp")
    p = Pilot(cores=8, worker_ranks=4, base=base).start()
    yield p
    p.close()
    assert not own_pids(base), "the closed pilot left processes running (raptor workers?)"


def _write_spec(folder: Path, stages: list[dict], name: str = "t", **extra) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "stages": stages, **extra}, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def write_spec():
    """write_spec(folder, stages, name="t") -> path of a pipeline YAML."""
    return _write_spec
