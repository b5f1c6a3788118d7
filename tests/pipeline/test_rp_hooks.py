"""The start-up hook's patches to Radical Pilot, each in a real interpreter with and without it, and in
the shared pilot's running agent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import deeprc.rp.session as session_mod
from deeprc.errors import DeepRCError
from deeprc.rp.hooks import write_hooks

SCHED_PROBE = """
import time
import radical.pilot.agent.scheduler.base as sched
t0 = time.perf_counter(); sched.time.sleep(0.1); capped = time.perf_counter() - t0
t0 = time.perf_counter(); time.sleep(0.1); plain = time.perf_counter() - t0
print(capped, plain, sched.time is time)
"""

QUEUE_PROBE = """
import json, threading, time
import radical.utils as ru

bridge = ru.zmq.Queue("probe")
bridge.start()
put = ru.zmq.Putter("probe", url=str(bridge.addr_put))
getter = lambda: ru.zmq.Getter("probe", url=str(bridge.addr_get))
out = {}
g = getter()
t0 = time.perf_counter(); reply = g.get_nowait(timeout=300)
out["empty"] = [reply, time.perf_counter() - t0]
threading.Timer(0.2, lambda: put.put({"n": 1})).start()
t0, got = time.perf_counter(), None
while not got:
    got = g.get_nowait(timeout=2000)
out["held"] = [got, time.perf_counter() - t0 - 0.2]
def take(getter, n, qname=None):
    seen, end = [], time.time() + 5
    while len(seen) < n and time.time() < end:
        seen += getter.get_nowait(qname=qname, timeout=500) or []
    return seen
for i in range(5):
    put.put({"i": i}, qname="a")
put.put({"x": 1}, qname="b")
out["b"] = take(getter(), 1, "b")
out["a"] = take(g, 5, "a")
gone = getter()
gone.get_nowait(timeout=10)  # leaves a request open, then goes away
gone._q.close(linger=0)
time.sleep(0.3)
for i in range(3):
    put.put({"k": i})
out["after_gone"] = take(g, 3)
print(json.dumps(out))
"""

START_PROBE = """
import logging, time, types
import radical.pilot.utils.component_manager as cm
import radical.pilot.utils.component as comp
import radical.utils.zmq.pubsub as ps
import radical.utils as ru
out = {"async": cm.ru is not ru}
t0 = time.perf_counter()
ret = cm.ru.sh_callout("radical-pilot-bridge too-few-arguments")
out["callout_s"] = time.perf_counter() - t0
me = types.SimpleNamespace(_startups={}, _log=logging.getLogger("probe"))
t0 = time.perf_counter()
try:
    cm.ComponentManager._wait_startup(me, ["no-such-bridge"], timeout=60)
    out["wait"] = "returned"
except RuntimeError as exc:
    out["wait"] = str(exc)[:200]
out["wait_s"] = time.perf_counter() - t0
bridge = ps.PubSub("probe")
bridge.start()
sub = ps.Subscriber("probe", url=str(bridge.addr_sub), topic="t", cb=lambda t, m: None)
time.sleep(0.05)  # its listener is inside a 500 ms poll now
t0 = time.perf_counter(); sub.stop(); out["stop_s"] = time.perf_counter() - t0
import json; print(json.dumps(out))
"""


@pytest.fixture()
def hooks(tmp_path) -> Path:
    folder = tmp_path / "hooks"
    folder.mkdir()
    return write_hooks(folder)


def _run(code: str, hooks: Path | None, cwd: Path, extra_env: dict[str, str] | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("DEEPRC_RP_")}
    env.update({"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", **(extra_env or {})})
    if hooks is not None:
        env["PYTHONPATH"] = str(hooks)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=cwd)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def _sched(hooks: Path | None, cwd: Path, extra_env: dict[str, str] | None = None) -> tuple[float, float, bool]:
    capped, plain, same = _run(SCHED_PROBE, hooks, cwd, extra_env).split()
    return float(capped), float(plain), same == "True"


def test_hook_caps_the_scheduler_sleep_only(hooks, tmp_path):
    capped, plain, same = _sched(hooks, tmp_path)
    assert capped < 0.05 and plain >= 0.1 and not same
    # without the hook, or with the cap or the group switched off, RP keeps its own 0.1 s
    for env in ({}, {"DEEPRC_RP_SCHED_SLEEP": "0.1"}, {"DEEPRC_RP_PATCHES": "queue,start"}):
        capped, plain, same = _sched(hooks if env else None, tmp_path, env)
        assert capped >= 0.1 and same


def test_queue_bridge_holds_requests_open_and_loses_nothing(hooks, tmp_path):
    plain = json.loads(_run(QUEUE_PROBE, None, tmp_path))
    patched = json.loads(_run(QUEUE_PROBE, hooks, tmp_path))
    # RP's bridge answers an idle consumer at once with nothing, so consumers and bridges spin
    assert plain["empty"][0] == [] and plain["empty"][1] < 0.2
    # ours keeps the request open for the consumer's whole wait, and answers it when a message comes
    assert patched["empty"][0] is None and patched["empty"][1] >= 0.25
    assert patched["held"][0] == [{"n": 1}] and patched["held"][1] < 0.1
    for out in (plain, patched):  # same routing, order and delivery as RP's own bridge
        assert out["a"] == [{"i": i} for i in range(5)] and out["b"] == [{"x": 1}]
        assert out["after_gone"] == [{"k": i} for i in range(3)]


def test_component_managers_start_side_by_side_and_fail_fast(hooks, tmp_path):
    out = json.loads(_run(START_PROBE, hooks, tmp_path))
    assert out["async"] and out["callout_s"] < 0.5  # returned before the bridge process ran
    # a start that failed is reported at once, not after RP's 600 s wait for its startup message
    assert "startup failed" in out["wait"] and out["wait_s"] < 30
    assert out["stop_s"] < 0.2  # RP joins its listener, which polls with a 500 ms timeout (~0.45 s here)
    plain = json.loads(_run(START_PROBE.replace("timeout=60", "timeout=1"), None, tmp_path))
    assert not plain["async"] and "not found" in plain["wait"] and plain["stop_s"] > 0.3


def test_pilot_resource_config_loads_the_hook(tmp_path, monkeypatch):
    for var in ("DEEPRC_RP_SCHED_SLEEP", "DEEPRC_RP_PATCHES"):
        monkeypatch.delenv(var, raising=False)
    p = session_mod.Pilot(base=tmp_path / "rp")
    assert p._agent_hooks() == [f'export PYTHONPATH={tmp_path / "rp" / "rp_hooks"}:"$PYTHONPATH"']
    assert (tmp_path / "rp" / "rp_hooks" / "sitecustomize.py").read_text().startswith('"""Start-up hook')
    monkeypatch.setenv("DEEPRC_RP_PATCHES", "off")
    assert p._agent_hooks() == []


@pytest.mark.parametrize("var,value,names", [
    ("DEEPRC_RP_PATCHES", "queue,turbo", "turbo"),
    ("DEEPRC_RP_SCHED_SLEEP", "fast", "not a number"),
])
def test_malformed_patch_settings_are_refused(monkeypatch, var, value, names):
    monkeypatch.setenv(var, value)
    with pytest.raises(DeepRCError) as err:
        session_mod.check_patch_env()
    assert var in str(err.value) and names in str(err.value) and "Fix:" in str(err.value)


def test_the_running_agent_loaded_the_hook(pilot):
    """The shared pilot's agent really imported its scheduler with the capped sleep and its bridges
    with the held-open requests (agent_0 imports both; components it forks inherit them)."""
    pattern = "sandbox/radical.pilot.sandbox/*/pilot.0000/agent_0.err"
    wanted = ("idle sleep capped at 0.002 s", "bridges hold requests open")
    text, deadline = "", time.time() + 180  # the pilot may still be booting
    while time.time() < deadline and not all(w in text for w in wanted):
        text = "".join(f.read_text() for f in pilot.base.glob(pattern))
        time.sleep(0.5)
    for w in wanted:
        assert w in text, f"{pilot.base}/{pattern}: {text[-2000:]!r}"


def test_pilot_bootstrap_skips_the_login_shell(pilot):
    """The shared pilot's bootstrap runs as `bash bootstrap_0.sh`, not `bash -l` (which ran the user's
    ~/.profile and ~/.bashrc, pyenv and conda init, on every pilot start); the agent still came up."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        argv = proc.info["cmdline"] or []
        if any(str(pilot.base) in a and a.endswith("bootstrap_0.sh") for a in argv):
            found.append(argv)
    assert found, f"no bootstrap_0.sh process of the pilot under {pilot.base}"
    for argv in found:
        script = next(i for i, a in enumerate(argv) if a.endswith("bootstrap_0.sh"))
        assert "-l" not in argv[1:script], argv
    pilot.pilot.wait(state=["PMGR_ACTIVE", "DONE", "FAILED", "CANCELED"], timeout=180)
    assert pilot.pilot.state == "PMGR_ACTIVE", pilot.pilot.state


def test_patches_apply_only_to_the_tested_rp_releases(monkeypatch):
    """The gate reads real version strings: outside the tested range no patch applies and one warning
    line says so (once); the installed RP, and any release in range, gets every group."""
    from importlib import metadata

    from deeprc.rp import patches as hooks_mod
    from deeprc.rp import versions
    from deeprc.rp.patches import idle, startup

    for var in ("DEEPRC_RP_SCHED_SLEEP", "DEEPRC_RP_PATCHES", "DEEPRC_RP_LOGIN_SHELL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hooks_mod, "_warned", False)
    said: list[str] = []
    for newer in ({"radical.pilot": "1.104.0", "radical.utils": "1.103.1"},
                  {"radical.pilot": "1.103.2", "radical.utils": "2.0.0rc1"},
                  {"radical.pilot": "1.99.7", "radical.utils": "1.99.0"},
                  {"radical.pilot": "", "radical.utils": "1.103.1"}):
        assert hooks_mod.patches(newer, warn=said.append) == {}, newer
    assert len(said) == 1, said  # said once per process
    assert "radical.pilot 1.104.0" in said[0] and "unpatched" in said[0] and "Fix:" in said[0]
    tested = hooks_mod.patches({"radical.pilot": "1.103.9", "radical.utils": "1.103.0"}, warn=said.append)
    assert {idle.SCHED, idle.QUEUE, startup.CMGR, startup.LAUNCHING} <= set(tested)
    installed = {n: metadata.version(n) for n in versions.TESTED}
    assert versions.installed_versions() == installed
    assert hooks_mod.patches(warn=said.append), f"the installed {installed} is outside the tested range"
    assert len(said) == 1
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    (low, high), = {versions.TESTED["radical.pilot"]}
    assert f'"radical.pilot>={low[0]}.{low[1]},<{high[0]}.{high[1]}"' in pyproject
