"""`make install`'s torch step (deploy/install_torch.py) and the pins' satisfiability from public indexes.

The resolution check switches this machine's pip configuration off (PIP_CONFIG_FILE=/dev/null, no
PIP_* index or find-links variables): what constraints.txt pins must resolve from PyPI (plus
PyTorch's CPU index where that answers), never from a local wheel folder. It resolves only: pip
26's `install --dry-run --report` reads each wheel's metadata (fast-deps: HTTP range requests, for
indexes that do not advertise PEP 658 metadata files) and downloads no distribution. pip 23.2, the
venv's own, downloads every wheel in full in a dry run (seen: torch 526 MB, tensorflow 572 MB).
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import re
import time
from pathlib import Path

import pytest
from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own dependency
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
PYPI = "https://pypi.org/simple"
CHECKER_PIP = "26.3"  # resolves with metadata only; the venv's pip is not touched



def load(name: str):
    """A stdlib-only script of deploy/ as a module."""
    spec = importlib.util.spec_from_file_location(name, REPO / "deploy" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


install_torch = load("install_torch")


def public_env() -> dict[str, str]:
    """This environment without any pip configuration: no config files, no PIP_* settings but the CA file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k == "PIP_CERT"}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def requirements() -> list[str]:
    """What `make install` asks for: the project's dependencies and its mpi and test extras."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [*project["dependencies"], *extras["mpi"], *extras["test"]]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture
def silent_server():
    """A local port that accepts connections and never answers (a stalled index)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    yield f"http://127.0.0.1:{srv.getsockname()[1]}/whl/cpu"
    srv.close()


def test_pin_is_public_and_variants_map_to_indexes():
    assert install_torch.torch_pin(REPO / "constraints.txt") == "2.13.0"
    pins = [line for line in (REPO / "constraints.txt").read_text().splitlines() if "==" in line]
    assert not [p for p in pins if "+" in p], "a local version label (+cpu) is not on PyPI"
    assert install_torch.index_url("cpu") == "https://download.pytorch.org/whl/cpu"
    assert install_torch.index_url("cu128") == "https://download.pytorch.org/whl/cu128"
    assert install_torch.index_url("pypi") is None
    assert install_torch.index_url("cpu", "https://mirror.example/torch/") == "https://mirror.example/torch"
    with pytest.raises(SystemExit, match="TORCH_VARIANT='gpu' is not a PyTorch build"):
        install_torch.index_url("gpu")


def test_freeze_pins_public_releases_and_marks_newer_python_only():
    from importlib import metadata

    freeze = load("freeze_constraints")
    torch = metadata.distribution("torch")
    assert "+" in torch.version and freeze.pin(torch) == f"torch=={torch.version.split('+')[0]}"
    assert freeze.pin(metadata.distribution("numpy")).endswith('; python_version >= "3.11"')  # numpy 2.4: 3.11+
    assert freeze.pin(metadata.distribution("click")) == f"click=={metadata.version('click')}"


def test_stalled_index_costs_only_the_probe_timeout(silent_server):
    t0 = time.monotonic()
    why = install_torch.probe(silent_server, 1.5)
    assert why and time.monotonic() - t0 < 3, why


def test_unreachable_index_falls_back_with_a_clear_message(tmp_path):
    """The torch step in a bare venv, against an index that refuses: a message naming it, then exit 0."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{closed.getsockname()[1]}/whl/cpu"
    closed.close()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    t0 = time.monotonic()
    proc = subprocess.run([str(venv / "bin" / "python"), str(REPO / "deploy" / "install_torch.py"),
                           "--constraints", str(REPO / "constraints.txt"), "--index-url", url],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"PyTorch's index {url} cannot be reached" in proc.stdout
    assert "torch==2.13.0 now comes from pip's default index" in proc.stdout and "TORCH_INDEX_URL" in proc.stdout
    assert time.monotonic() - t0 < 10


@pytest.fixture(scope="module")
def checker_pip(tmp_path_factory) -> Path:
    """pip CHECKER_PIP's wheel from PyPI, run as `python pip.whl/pip` (nothing installed)."""
    folder = tmp_path_factory.mktemp("pip")
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                           "--index-url", PYPI, "-d", str(folder), f"pip=={CHECKER_PIP}"],
                          capture_output=True, text=True, env=public_env(), timeout=120)
    assert proc.returncode == 0, f"PyPI ({PYPI}) is needed for this check:\n{proc.stderr[-2000:]}"
    return next(folder.glob("pip-*.whl")) / "pip"


@pytest.mark.slow
def test_pins_resolve_from_public_indexes(checker_pip, tmp_path, capsys):
    """Resolve `make install` (dry run, metadata only) from PyPI, plus PyTorch's CPU index if it answers."""
    torch_index = install_torch.index_url("cpu")
    reachable = install_torch.probe(torch_index, 5) is None
    indexes = ["--index-url", PYPI] + (["--extra-index-url", torch_index] if reachable else [])
    report = tmp_path / "report.json"
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, str(checker_pip), "install", "--dry-run", "--ignore-installed",
                           "--use-feature=fast-deps", "--quiet", "--report", str(report), *indexes,
                           "-c", str(REPO / "constraints.txt"), *requirements()],
                          capture_output=True, text=True, env=public_env(), timeout=600)
    took = time.monotonic() - t0
    assert proc.returncode == 0, f"the pins do not resolve from {indexes}:\n{proc.stderr[-3000:]}"
    resolved = {norm(i["metadata"]["name"]): i for i in json.loads(report.read_text())["install"]}
    local = {n: i["download_info"]["url"] for n, i in resolved.items() if not i["download_info"]["url"].startswith("https://")}
    assert not local, f"resolved from a local folder, not a public index: {local}"
    torch = resolved["torch"]
    version, url = torch["metadata"]["version"], torch["download_info"]["url"]
    if reachable:
        assert version == "2.13.0+cpu" and url.startswith("https://download.pytorch.org/"), (version, url)
    else:
        assert version == "2.13.0" and url.startswith("https://files.pythonhosted.org/"), (version, url)
    pins = {norm(r.name): str(r.specifier).removeprefix("==") for r in map(Requirement, (
            line for line in (REPO / "constraints.txt").read_text().splitlines() if line and not line.startswith("#")))
            if r.marker is None or r.marker.evaluate()}
    off_pin = {n: (i["metadata"]["version"], pins[n]) for n, i in resolved.items()
               if n in pins and i["metadata"]["version"].split("+")[0] != pins[n]}
    assert len(pins) > 100 and not set(pins) - set(resolved) - {"deeprc"}, set(pins) - set(resolved)
    assert not off_pin, off_pin
    with capsys.disabled():
        where = (f"PyTorch's CPU index {torch_index}" if reachable
                 else f"PyPI ({torch_index} unreachable here, so the default-index fallback was checked)")
        print(f"\n[install check] {len(resolved)} packages resolve from public indexes in {took:.0f} s; "
              f"torch {version} from {where}")
