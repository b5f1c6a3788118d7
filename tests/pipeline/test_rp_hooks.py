"""The agent start-up hook caps only the RP agent scheduler's idle sleep, in a real interpreter."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import deeprc.pipeline.pilot as pilot_mod

PROBE = """
import time
import radical.pilot.agent.scheduler.base as sched
t0 = time.perf_counter(); sched.time.sleep(0.1); capped = time.perf_counter() - t0
t0 = time.perf_counter(); time.sleep(0.1); plain = time.perf_counter() - t0
print(capped, plain, sched.time is time)
"""


def _probe(hooks: Path | None, extra_env: dict[str, str] | None = None) -> tuple[float, float, bool]:
    env = {"PATH": "/usr/bin:/bin", **(extra_env or {})}
    if hooks is not None:
        env["PYTHONPATH"] = str(hooks)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    capped, plain, same = out.stdout.split()
    return float(capped), float(plain), same == "True"


def test_hook_caps_the_scheduler_sleep_only(tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    shutil.copyfile(Path(pilot_mod.__file__).with_name("rp_sitecustomize.py"), hooks / "sitecustomize.py")
    capped, plain, same = _probe(hooks)
    assert capped < 0.05 and plain >= 0.1 and not same
    # without the hook (or switched off) RP keeps its own 0.1 s
    for env in ({}, {"DEEPRC_RP_SCHED_SLEEP": "0.1"}):
        capped, plain, same = _probe(hooks if env else None, env)
        assert capped >= 0.1 and same


def test_pilot_resource_config_loads_the_hook(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPRC_RP_SCHED_SLEEP", raising=False)
    p = pilot_mod.Pilot(base=tmp_path / "rp")
    lines = p._agent_hooks()
    assert lines == [f'export PYTHONPATH={tmp_path / "rp" / "rp_hooks"}:"$PYTHONPATH"']
    assert (tmp_path / "rp" / "rp_hooks" / "sitecustomize.py").read_text().startswith('"""Start-up hook')
    monkeypatch.setenv("DEEPRC_RP_SCHED_SLEEP", "off")
    assert p._agent_hooks() == []


def test_the_running_agent_loaded_the_hook(pilot):
    """The shared pilot's agent really imported its scheduler with the capped sleep (agent_0 imports
    it; the scheduler component it forks inherits the module)."""
    pattern = "sandbox/radical.pilot.sandbox/*/pilot.0000/agent_0.err"
    text, deadline = "", time.time() + 180  # the pilot may still be booting
    while time.time() < deadline and "idle sleep capped" not in text:
        text = "".join(f.read_text() for f in pilot.base.glob(pattern))
        time.sleep(0.5)
    assert "idle sleep capped at 0.002 s" in text, f"{pilot.base}/{pattern}: {text[-2000:]!r}"
