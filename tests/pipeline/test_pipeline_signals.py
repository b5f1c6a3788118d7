"""SIGTERM to a running `deeprc-deploy run`: tasks canceled, session closed, finished outputs kept."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from deeprc.rp.reaping import own_pids


def _wait(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("runner", ["pilot", "batch"])
def test_sigterm_keeps_finished_outputs(runner, tmp_path, write_spec, stagefns_on_path):
    spec = write_spec(tmp_path, [
        {"name": "a", "function": "pipeline_stagefns:write", "ranks": 2},
        {"name": "slow", "function": "pipeline_stagefns:write", "depends_on": ["a"], "params": {"sleep": 300}},
        {"name": "after", "function": "pipeline_stagefns:write", "depends_on": ["slow"]},
    ])
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "deeprc.cli", "run", str(spec), "--runner", runner,
                             "--run-dir", str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "COLUMNS": "120"})
    try:
        log = run_dir / "logs" / "slow.log"
        _wait(lambda: (run_dir / "stages" / "a" / "_done.json").exists() and log.exists()
              and "rank 0/1" in log.read_text(), 240, "stage a done and stage slow running")
        before = (run_dir / "stages" / "a" / "out.json").read_text()
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        took = time.time() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.decode(errors="replace")
    assert proc.returncode == 128 + signal.SIGTERM, text
    assert took < 45, f"took {took:.1f} s to stop"
    assert "SIGTERM" in text
    status = json.loads((run_dir / "status.json").read_text())
    assert status["run"] == "canceled"
    assert status["stages"]["a"]["state"] == "done"
    assert status["stages"]["slow"]["state"] == "canceled" and status["stages"]["after"]["state"] == "canceled"
    assert (run_dir / "stages" / "a" / "out.json").read_text() == before
    assert json.loads((run_dir / "stages" / "a" / "_done.json").read_text())["output_hash"]
    assert not (run_dir / "stages" / "slow" / "_done.json").exists()
    events = [json.loads(x) for x in (run_dir / "timeline.jsonl").read_text().splitlines()]
    assert any(e["stage"] == "slow" and e.get("reason") == "canceled" for e in events)
    # nothing of this run is left running (RP agent, workers, or the slow stage's processes)
    time.sleep(2)
    left = subprocess.run(["pgrep", "-f", str(run_dir)], capture_output=True, text=True).stdout.split()
    assert not left and not own_pids(run_dir), f"processes left: {left} {own_pids(run_dir)}"


def test_sigint_while_the_pilot_boots_leaves_nothing(tmp_path, write_spec, stagefns_on_path):
    """Ctrl-C while RP's session, bridges and agent are still coming up: the run is canceled, and no
    RP process (they rename themselves and leave the process tree) outlives it."""
    # a torch stage waits for the warm worker (others would start on the launcher meanwhile, deeprc.pipeline.overlap)
    spec = write_spec(tmp_path, [{"name": "a", "function": "pipeline_stagefns:write", "ranks": 2, "framework": "torch"}])
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "deeprc.cli", "run", str(spec), "--runner", "pilot",
                             "--run-dir", str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # the agent's sandbox appears once the pilot job started: the agent is booting
        _wait(lambda: any((run_dir / "rp" / "sandbox").glob("radical.pilot.sandbox/*/pilot.0000/bootstrap_0.sh")),
              120, "the pilot job started")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.decode(errors="replace")
    assert proc.returncode == 128 + signal.SIGINT, text
    assert json.loads((run_dir / "status.json").read_text())["run"] == "canceled"
    time.sleep(2)
    assert not own_pids(run_dir), f"processes left: {own_pids(run_dir)}"
