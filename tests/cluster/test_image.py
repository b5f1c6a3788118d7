"""The demo inside the site's image on the emulated 2-node cluster, in pilot and in batch mode.

The site is emulated-cluster with `container: {runtime: charliecloud, image: <the image the suite built
with podman, unpacked>}`, and the client is a venv with only deploy/host-requirements.txt and DeepRC
(no torch, TensorFlow, pyarrow, mpi4py or MPI): what a container site's host needs. Every stage must
have run inside the image (DEEPRC_IMAGE=1 from the image's environment, the image's interpreter), and a
stage with more ranks than one node holds must have had ranks on both nodes. In pilot mode the warm
raptor worker lives in the image too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cluster_helpers import REPO, assert_both_nodes

from deeprc.pipeline.spec import load_pipeline

pytestmark = [pytest.mark.slurm, pytest.mark.podman, pytest.mark.slow, pytest.mark.timeout(3600)]
DEMO = REPO / "pipelines" / "demo.yaml"
PROFILE = "wide"  # the demo's small profile with its data-engine and TensorFlow stages on 4 ranks
IMAGE_PYTHON = "/opt/deeprc/venv/bin/python"  # containers/recipe.yaml: DEEPRC_VENV


@pytest.fixture(scope="module")
def image_site(cluster: dict, image_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = yaml.safe_load(Path(cluster["site"]).read_text())
    data["scheduler_env"]["SLURM_CONF"] = cluster["conf"]
    data["container"] = {"runtime": "charliecloud", "image": str(image_dir)}
    path = tmp_path_factory.mktemp("sites") / "emulated-cluster-image.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def light_client() -> Path:
    """The host's client venv: deploy/host-requirements.txt and DeepRC without its dependencies, on /var/tmp
    (shared with the nodes: RP starts its raptor master there)."""
    venv = Path("/var/tmp/deeprc-test-client")
    shutil.rmtree(venv, ignore_errors=True)
    base = getattr(sys, "_base_executable", None) or shutil.which("python3")
    steps = [[base, "-m", "venv", str(venv)],
             [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "-c", str(REPO / "constraints.txt"),
              "-r", str(REPO / "deploy" / "host-requirements.txt")],
             [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "--no-deps", str(REPO)]]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    heavy = subprocess.run([str(venv / "bin" / "python"), "-c", "import importlib.util as u; print([m for m in "
                            "('torch', 'tensorflow', 'pyarrow', 'mpi4py', 'matplotlib') if u.find_spec(m)])"],
                           capture_output=True, text=True, timeout=60)
    assert heavy.stdout.strip() == "[]", heavy.stdout + heavy.stderr
    return venv / "bin" / "python"


def run_in_allocation(cluster: dict, site: Path, runner: str, run: Path, client: Path) -> float:
    """`deeprc-deploy run` of the demo inside `salloc -N2` with the light client; returns its wall time."""
    env = {k: v for k, v in cluster["env"].items() if k != "PYTHONPATH"}  # nothing of the host's leaks in
    env["PATH"] = f"{client.parent}:/usr/local/bin:/usr/bin:/bin"  # no mpiexec of the test venv either
    cmd = ["salloc", f"--nodes={len(cluster['nodes'])}", f"--ntasks-per-node={cluster['cores_per_node']}",
           "--partition", cluster["partition"], "--time=20", str(client), "-m", "deeprc.cli", "run", str(DEMO),
           "--site", str(site), "--runner", runner, "--profile", PROFILE, "--run-dir", str(run)]
    t0 = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1500)
    took = time.time() - t0
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-3000:]}"
    print(f"demo ({PROFILE}) in the image, {runner} mode on {len(cluster['nodes'])} nodes: {took:.1f} s")
    return took


@pytest.mark.parametrize("runner", ["pilot", "batch"])
def test_demo_runs_inside_the_image_on_both_nodes(cluster: dict, image_site: Path, light_client: Path, runner: str,
                                                  tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_in_allocation(cluster, image_site, runner, run, light_client)
    pipe = load_pipeline(DEMO, PROFILE)
    for stage in pipe.stages:
        info = json.loads((run / "stages" / stage.name / "_done.json").read_text())
        assert info["runner"] == runner
        assert info["in_image"] == [True] * stage.ranks, (stage.name, info["in_image"])
        assert all(p.startswith(IMAGE_PYTHON) for p in info["pythons"]), (stage.name, info["pythons"])
        assert str(light_client) not in info["pythons"]
        if stage.ranks > cluster["cores_per_node"]:
            assert_both_nodes(cluster, info["hosts"], stage.ranks)
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 < metrics["train_nhits"]["MASE"] < 3  # real fits, inside the image
    assert metrics["train_hydrology"]["NSE"] > -10
    assert (run / "report.html").is_file()  # written by the light client (without the timeline chart)
    if runner == "pilot":
        log = (run / "logs" / "pilot.log").read_text()
        line = next(x for x in log.splitlines() if "warm worker answered" in x)
        assert "node1" in line and "node2" in line and f"python {IMAGE_PYTHON}" in line and "in the image" in line, line
        worker = (run / "rp" / "raptor-worker.sh").read_text()
        assert "exec ch-run --set-env -b /tmp " in worker and str(cluster_image(image_site)) in worker  # run under /tmp


def cluster_image(site: Path) -> str:
    return yaml.safe_load(site.read_text())["container"]["image"]
