"""Warm pilots for real: one daemon (`deeprc-deploy pilot start`) shared by this module's runs, then a
small second one for resume and the idle timeout. Tests run in file order; the stop test ends the first."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deeprc.rp.reaping import alive, own_pids
from deeprc.pipeline.report import task_spans
from deeprc.pipeline.runfolder import RunFolder

NAME = "t"


def cli(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deeprc.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def _wait(pred, timeout: float, what: str) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def state(home: Path, name: str = NAME) -> dict:
    return json.loads((home / name / "state.json").read_text())


def spans(run_dir: Path) -> dict[str, dict]:
    return {s["stage"]: s for s in task_spans(RunFolder(run_dir).timeline())}


def test_missing_or_misnamed_pilots_get_one_paragraph(tmp_path, write_spec):
    env = {**os.environ, "DEEPRC_PILOTS_DIR": str(tmp_path / "pilots")}
    spec = write_spec(tmp_path, [{"name": "a", "function": "pipeline_stagefns:write"}])
    for args, words in ((("run", str(spec), "--pilot", "nosuch"), ("no warm pilot named 'nosuch'", "pilot start")),
                        (("pilot", "start", "--name", "../x"), ("not usable as a folder name", "Fix:")),
                        (("run", str(spec), "--pilot", "p", "--runner", "batch"), ("--pilot runs on", "Fix:")),
                        (("pilot", "stop", "nosuch"), ("no warm pilot named", "pilot list"))):
        out = cli(*args, env=env, timeout=60)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert all(w in out.stderr for w in words), out.stderr
    assert not (tmp_path / "pilots").exists()  # nothing written for a refused command


def test_the_ledger_shares_cores_fairly():
    from types import SimpleNamespace

    from deeprc.pipeline.pilotd import Ledger

    ledger = Ledger(4)
    x, y = SimpleNamespace(own={"x1": 1, "x2": 1, "x3": 1}), SimpleNamespace(own={})
    ledger.backends = [x]
    assert ledger.free_for(x) == 4  # alone: every core
    ledger.backends = [x, y]
    assert ledger.free_for(y) == 1  # what x leaves free
    x.own = {"x1": 1}
    assert ledger.free_for(y) == 2 and ledger.free_for(x) == 2  # at most the fair share while both run


@pytest.fixture(scope="module")
def warm(stagefns_on_path, tmp_path_factory):
    """One warm pilot for the module: (pilots folder, environment for the CLI)."""
    home = tmp_path_factory.mktemp("pilots")
    env = {**os.environ, "DEEPRC_PILOTS_DIR": str(home), "COLUMNS": "150"}
    t0 = time.time()
    out = cli("pilot", "start", "--name", NAME, "--idle-timeout", "0", env=env, timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"warm pilot '{NAME}' ready" in out.stdout, out.stdout
    st = state(home)
    assert st["state"] == "ready" and st["ready_s"] < time.time() - t0 + 1
    assert oct((home / NAME / "token").stat().st_mode & 0o777) == "0o600"
    assert oct((home / NAME).stat().st_mode & 0o777) == "0o700"
    yield home, env
    cli("pilot", "stop", NAME, env=env)  # after a failure; the stop test normally did it


def test_two_runs_go_through_the_warm_pilot(warm, tmp_path, write_spec):
    home, env = warm
    spec = write_spec(tmp_path, [
        {"name": "a", "function": "pipeline_stagefns:write", "ranks": 2},
        {"name": "b", "function": "pipeline_stagefns:allreduce", "depends_on": ["a"], "ranks": 2},
    ])
    for i in range(2):
        run_dir = tmp_path / f"run{i}"
        t0 = time.time()
        out = cli("run", str(spec), "--pilot", NAME, "--run-dir", str(run_dir), env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        status = json.loads((run_dir / "status.json").read_text())
        assert status["run"] == "done" and "--pilot t" in status["command"]
        # no pilot start-up: no RP session of its own (checked below: one session for both runs), and the
        # first stage started before a pilot could have booted (a cold start takes 8 s or more here)
        sp = spans(run_dir)
        assert sp["a"]["started"] - status["started"] < 8, (sp, status["started"])
        assert not (run_dir / "rp").exists() or not list((run_dir / "rp").glob("**/rp.session.*"))
        print(f"run {i} through the warm pilot: {time.time() - t0:.1f} s")
        assert "warm raptor worker" in (run_dir / "logs" / "a.log").read_text()
        assert json.loads((run_dir / "stages" / "b" / "out.json").read_text()) == {"value": 3.0, "size": 2}
        assert (run_dir / "report.md").is_file()
    # both runs went to the one RP session the daemon started
    assert len(list((home / NAME / "rp" / "sandbox").glob("radical.pilot.sandbox/rp.session.*"))) == 1
    listed = cli("pilot", "list", env=env)
    assert listed.returncode == 0 and NAME in listed.stdout and "ready" in listed.stdout


def test_killed_client_reattaches_to_its_run(warm, tmp_path, write_spec):
    _, env = warm
    spec = write_spec(tmp_path, [{"name": "s", "function": "pipeline_stagefns:write", "params": {"sleep": 6}}])
    run_dir = tmp_path / "run"
    argv = [sys.executable, "-m", "deeprc.cli", "run", str(spec), "--pilot", NAME, "--run-dir", str(run_dir)]
    client = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = run_dir / "logs" / "s.log"
    _wait(lambda: log.exists() and "warm raptor worker" in log.read_text(), 60, "stage s running")
    client.send_signal(signal.SIGKILL)
    client.wait(10)
    out = cli("run", str(spec), "--pilot", NAME, "--run-dir", str(run_dir), env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "attached to" in out.stdout, out.stdout
    status = json.loads((run_dir / "status.json").read_text())
    assert status["stages"]["s"]["state"] == "done" and status["stages"]["s"]["attempts"] == 1


def test_two_pipelines_share_the_core_budget(warm, tmp_path, write_spec):
    """Two runs of 2 x cores 1-core stages each: never more stages at once than the pilot's cores, and
    each run gets a stage running before the other one is over (the first does not keep every core)."""
    home, env = warm
    cores = state(home)["cores"]
    runs, procs = [], []
    for name in ("x", "y"):
        spec = write_spec(tmp_path, [{"name": f"{name}{i}", "function": "pipeline_stagefns:write", "params": {"sleep": 2}}
                                     for i in range(2 * cores)], name=name)
        runs.append(tmp_path / f"run-{name}")
        procs.append(subprocess.Popen([sys.executable, "-m", "deeprc.cli", "run", str(spec), "--pilot", NAME,
                                       "--run-dir", str(runs[-1])], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    for p in procs:
        text, _ = p.communicate(timeout=120)
        assert p.returncode == 0, text
    all_spans = [s for r in runs for s in spans(r).values()]
    assert len(all_spans) == 4 * cores
    edges = sorted([(s["started"], 1) for s in all_spans] + [(s["ended"], -1) for s in all_spans])
    busy, peak = 0, 0
    for _, d in edges:
        busy += d
        peak = max(peak, busy)
    assert peak <= cores, all_spans
    x, y = (list(spans(r).values()) for r in runs)
    assert min(s["started"] for s in x) < max(s["ended"] for s in y)
    assert min(s["started"] for s in y) < max(s["ended"] for s in x)


def test_stop_cancels_a_running_stage_and_a_new_pilot_resumes(warm, tmp_path, write_spec):
    home, env = warm
    stages = [{"name": "a", "function": "pipeline_stagefns:write"},
              {"name": "slow", "function": "pipeline_stagefns:write", "depends_on": ["a"], "params": {"sleep": 300}}]
    spec = write_spec(tmp_path, stages)
    run_dir = tmp_path / "run"
    client = subprocess.Popen([sys.executable, "-m", "deeprc.cli", "run", str(spec), "--pilot", NAME, "--run-dir",
                               str(run_dir)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = run_dir / "logs" / "slow.log"
    _wait(lambda: log.exists() and "warm raptor worker" in log.read_text(), 60, "stage slow running")
    pid = state(home)["pid"]
    t0 = time.time()
    out = cli("pilot", "stop", NAME, env=env)
    assert out.returncode == 0 and "canceled run(s), finished outputs kept" in out.stdout, out.stdout + out.stderr
    assert time.time() - t0 < 60
    text, _ = client.communicate(timeout=30)
    assert client.returncode == 1 and "canceled" in text and "Finished stages are kept" in text, text
    st = state(home)
    assert st["state"] == "stopped" and "pilot stop" in st["reason"]
    _wait(lambda: not alive(pid), 10, "the daemon's exit")  # a zombie until init reaps it
    status = json.loads((run_dir / "status.json").read_text())
    assert status["run"] == "canceled"
    assert status["stages"]["a"]["state"] == "done" and status["stages"]["slow"]["state"] == "canceled"
    assert (run_dir / "stages" / "a" / "_done.json").is_file() and not (run_dir / "stages" / "slow" / "_done.json").exists()
    time.sleep(1)
    assert not own_pids(home / NAME), own_pids(home / NAME)
    refused = cli("run", str(spec), "--pilot", NAME, "--run-dir", str(run_dir), env=env)
    assert refused.returncode == 2 and "is stopped" in refused.stderr and "Traceback" not in refused.stderr

    # a second, small pilot: the rerun resumes (a cached), then the pilot stops itself when idle
    stages[1]["params"] = {"sleep": 0}
    spec = write_spec(tmp_path, stages)
    out = cli("pilot", "start", "--name", "idle", "--idle-timeout", "5", env=env, timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    out = cli("run", str(spec), "--pilot", "idle", "--run-dir", str(run_dir), env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    status = json.loads((run_dir / "status.json").read_text())
    assert {n: s["state"] for n, s in status["stages"].items()} == {"a": "cached", "slow": "done"}
    ended = time.time()
    _wait(lambda: state(home, "idle")["state"] == "stopped", 40, "the idle pilot to stop itself")
    assert 4 <= time.time() - ended < 40 and "idle for 5 s" in state(home, "idle")["reason"]
