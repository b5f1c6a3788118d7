"""Cloud-bootstrap test helpers: cloud site files written per test, the CLI run as users run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "deeprc.cli"]

AWS_EFA = {
    "description": "AWS p4d with EFA (test)",
    "partitions": {"gpu": {"nodes": 4, "cores_per_node": 96, "gpus_per_node": 8, "gpu_model": "A100"}},
    "container": {"runtime": "podman", "image": "ghcr.io/example/deeprc:0.1"},
    "network": {"nccl_socket_ifname": "auto"},
    "cloud": {
        "provider": "aws", "region": "us-east-1", "instance_type": "p4d.24xlarge", "accelerator_count": 8,
        "efa": True, "placement_group": "deeprc-pg",
        "options": {"subnet_id": "subnet-0abc", "security_group_ids": ["sg-0abc"], "key_name": "me"},
    },
}
GCP_GPU = {
    "description": "Google Cloud A100 VM (test)",
    "container": {"runtime": "docker", "image": "us-docker.pkg.dev/example/deeprc:0.1"},
    "network": {"nccl_socket_ifname": "ens4", "gloo_socket_ifname": "ens4"},
    "cloud": {
        "provider": "gcp", "zone": "us-central1-a", "instance_type": "a2-highgpu-1g",
        "accelerator": "nvidia-tesla-a100", "accelerator_count": 1, "options": {"project": "my-project"},
    },
}
# The site the container "VMs" use: a CPU instance, DeepRC installed into a venv.
VM_SITE = {
    "description": "CPU VM standing in for a cloud instance (podman test)",
    "partitions": {"vm": {"nodes": 2, "cores_per_node": 2}},
    "container": {"runtime": "podman", "image": "localhost/deeprc:latest"},
    "network": {"nccl_socket_ifname": "auto"},
    "cloud": {"provider": "aws", "region": "us-east-1", "instance_type": "c7i.large"},
}


def write_site(folder: Path, name: str, data: dict) -> Path:
    """Write a site YAML file named `name` and return its path."""
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def deeprc(*args: str, cwd: Path | None = None, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `deeprc-deploy ARGS` in a fresh interpreter (as a user would)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"deeprc-deploy {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def sites(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "sites"
    folder.mkdir()
    return {
        "aws": write_site(folder, "aws-efa-test", AWS_EFA),
        "gcp": write_site(folder, "gcp-a100-test", GCP_GPU),
        "vm": write_site(folder, "vm-test", VM_SITE),
    }


def need_tool(name: str) -> str:
    """Path of a validation tool; skip with the install hint when this machine lacks it."""
    import shutil

    exe = shutil.which(name)
    if exe is None:
        pytest.skip(f"{name} is not installed (apt-get install -y {name})")
    return exe
