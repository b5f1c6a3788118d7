"""Hostile config values reach the job literally: a rendered script is RUN and nothing executes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deeprc.errors import DeepRCError
from deeprc.launch.plan import make_plan
from deeprc.launch.render import render

from launch_helpers import HERE

STUB = """#!{python}
import json, os, sys
with open(os.environ["E_STUB_OUT"], "w") as f:
    json.dump({{"argv": sys.argv[1:], "env": dict(os.environ), "cwd": os.getcwd()}}, f)
"""


def hostile_site(tmp: Path) -> tuple[Path, dict]:
    m = lambda i: f"{tmp}/MARK{i}"  # noqa: E731
    stub = tmp / "stub deeprc"
    stub.write_text(STUB.format(python=sys.executable))
    stub.chmod(0o755)
    site = {
        "description": "values with spaces, quotes, $(...) and backticks",
        "scheduler": "slurm", "launcher": "mpiexec", "default_partition": "p",
        "partitions": {"p": {"nodes": 1, "cores_per_node": 2, "max_walltime": "01:00:00"}},
        "account": f"acct $(touch {m(1)}) `touch {m(2)}`",
        "module_use": [f"/opt/mods `touch {m(3)}`"],
        "modules": ["mod with space", f"$(touch {m(4)})", "it's"],
        "environment": {
            "PLAIN": "it's \"quoted\" and has spaces",
            "SUBST": f"$(touch {m(5)})",
            "TICKS": f"`touch {m(6)}`",
            "DOLLAR": "$HOME and ${PATH}",
        },
        "network": {"nccl_socket_ifname": f"eth0; touch {m(7)}"},
        "filesystems": {"image_cache": f"/tmp/cache $(touch {m(8)})/$USER"},
        "deeprc_command": [str(stub), "arg with space", f"$(touch {m(9)})", "`id`"],
    }
    path = tmp / "hostile.yaml"
    path.write_text(yaml.safe_dump(site))
    return path, site


@pytest.mark.parametrize("mode", ["pilot", "batch"])
def test_hostile_values_are_not_executed(tmp_path: Path, mode: str) -> None:
    site_path, site = hostile_site(tmp_path)
    run_dir = tmp_path / "run dir 'with' $(quotes)"
    plan = make_plan(site_path, HERE / "pipelines" / "golden.yaml", mode=mode, profile="cpu", run_dir=run_dir)
    job = render(plan).jobs[0]
    run_dir.mkdir()
    script = tmp_path / "job.sh"
    script.write_text(job.text)
    out = tmp_path / "stub.json"
    modlog = tmp_path / "modules.log"
    # `module` is a shell function on clusters; here it records its arguments
    wrapper = f'module() {{ printf "%s\\n" "$*" >> {modlog}; }}; export -f module; exec bash {script}'
    env = {**os.environ, "E_STUB_OUT": str(out), "USER": "alice"}
    proc = subprocess.run(["bash", "-c", wrapper], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert not list(tmp_path.glob("MARK*")), "a config value was executed by the shell"
    got = json.loads(out.read_text())
    assert got["argv"][:3] == site["deeprc_command"][1:]
    assert got["cwd"] == str(run_dir)
    assert str(run_dir) in got["argv"]
    for k, v in site["environment"].items():
        assert got["env"][k] == v
    assert got["env"]["NCCL_SOCKET_IFNAME"] == site["network"]["nccl_socket_ifname"]
    # only a plain $USER reference in a cache path expands (in the job), the $(...) stays text
    assert got["env"]["APPTAINER_CACHEDIR"] == f"/tmp/cache $(touch {tmp_path}/MARK8)/alice"
    assert modlog.read_text().splitlines() == [
        f"use {site['module_use'][0]}", "load mod with space", f"load {site['modules'][1]}", "load it's"]


def test_shellcheck_hostile(tmp_path: Path) -> None:
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed (apt-get install -y shellcheck)")
    site_path, _ = hostile_site(tmp_path)
    plan = make_plan(site_path, HERE / "pipelines" / "golden.yaml", mode="batch", profile="cpu", run_dir=tmp_path / "r")
    files = []
    for j in render(plan).jobs:
        f = tmp_path / f"{j.key}.sh"
        f.write_text(j.text)
        files.append(str(f))
    # SC2016 (info) flags the intended single quotes around literal `$(...)` values
    proc = subprocess.run(["shellcheck", "--shell=bash", "--exclude=SC2016", *files], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_line_break_cannot_escape_a_directive(tmp_path: Path) -> None:
    site_path, site = hostile_site(tmp_path)
    site["account"] = f"acct\ntouch {tmp_path}/MARK0"
    site_path.write_text(yaml.safe_dump(site))
    plan = make_plan(site_path, HERE / "pipelines" / "golden.yaml", mode="pilot", profile="cpu", run_dir=tmp_path / "r")
    with pytest.raises(DeepRCError, match="line break"):
        render(plan)
