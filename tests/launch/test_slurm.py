"""`launch --site local-slurm` on the real single-node Slurm: pilot and batch runs to completion,
`status` showing progress, `logs`, and `cancel` stopping a run while keeping finished outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from deeprc.rp.reaping import own_pids
from deeprc.sites import builtin_sites_dir

from launch_helpers import HERE

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
CLI = [sys.executable, "-m", "deeprc.cli"]
TINY = str(HERE / "pipelines" / "tiny.yaml")


@pytest.fixture(scope="module")
def site(slurm: dict, tmp_path_factory: pytest.TempPathFactory) -> str:
    """local-slurm plus PYTHONPATH for this folder's stage module (stages_tiny)."""
    data = yaml.safe_load((builtin_sites_dir() / "local-slurm.yaml").read_text())
    data.setdefault("environment", {})["PYTHONPATH"] = str(HERE)
    path = tmp_path_factory.mktemp("sites") / "test-slurm.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_slurm_setup_is_reentrant(slurm: dict, repo_root: Path) -> None:
    """A second tests/infra/slurm.sh returns at once, even with its output captured: the daemons it
    started hold neither its lock nor its stdout (both made the CI's second call hang)."""
    lock = os.path.realpath("/var/lock/deeprc-slurm.lock")
    for name in ("slurmctld", "slurmd", "munged"):
        pids = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout.split()
        assert pids, f"{name} is not running"
        for pid in pids:
            fds = Path(f"/proc/{pid}/fd")
            targets = {os.path.realpath(f) for f in fds.iterdir()} if fds.is_dir() else set()
            assert lock not in targets, f"{name} ({pid}) holds the setup lock {lock}"
    proc = subprocess.run(["bash", str(repo_root / "tests" / "infra" / "slurm.sh")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.split() == ["SLURM_READY", slurm["node"]], proc.stderr


def cli(env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc


def status(env: dict, run: Path) -> dict:
    return json.loads(cli(env, "status", str(run), "--json").stdout)


def wait(env: dict, run: Path, until, timeout: float = 240) -> list[dict]:  # noqa: ANN001
    """Poll `status --json` until `until(status)`; return every status seen."""
    seen, t0 = [], time.time()
    while time.time() - t0 < timeout:
        st = status(env, run)
        seen.append(st)
        if until(st):
            return seen
        time.sleep(2)
    logs = cli(env, "logs", str(run), check=False).stdout[-3000:]
    pytest.fail(f"run {run} did not get there in {timeout} s; last status {seen[-1]}\n{logs}")


def finished(st: dict) -> bool:
    return st["run"] in ("done", "failed", "canceled", "cancelled") and all(
        j["state"] in ("done", "failed", "cancelled", "unknown") for j in st["jobs"])


@pytest.mark.parametrize("mode", ["batch"])  # pilot mode: the demo below (or run tiny with ["batch", "pilot"])
def test_launch_runs_to_completion(slurm: dict, site: str, tmp_path: Path, mode: str) -> None:
    env = slurm["env"]
    run = tmp_path / "run"
    out = cli(env, "launch", "--site", site, TINY, "--mode", mode, "--run-dir", str(run), "--time", "00:10:00").stdout
    assert f"run folder: {run}" in out
    record = json.loads((run / "launch.json").read_text())
    assert record["mode"] == mode and record["scheduler"] == "slurm"
    assert [j["key"] for j in record["jobs"]] == (["prepare", "train"] if mode == "batch" else ["pilot"])
    seen = wait(env, run, finished)
    assert seen[-1]["run"] == "done", seen[-1]
    # status showed the run before it ended (queued/running jobs or stages), then every job done
    assert any(not finished(s) for s in seen) or len(seen) == 1
    assert all(j["state"] in ("done", "unknown") for j in seen[-1]["jobs"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train"]["sum"] == 3.0 and metrics["train"]["size"] == 2  # a real 2-rank allreduce
    # the report's timeline has one span per stage job (each job numbers its own tasks from 1)
    from deeprc.pipeline.report import task_spans
    from deeprc.pipeline.runfolder import RunFolder

    spans = [s for s in task_spans(RunFolder(run).timeline()) if s.get("ok")]
    assert sorted(s["stage"] for s in spans) == ["prepare", "train"]
    assert spans[0]["ended"] <= spans[1]["started"]  # train ran after prepare (afterok)
    assert (run / "stages" / "train" / "model.json").is_file()
    logs = cli(env, "logs", str(run), "--stage", "train").stdout
    assert "==>" in logs


@pytest.mark.parametrize("mode", ["batch", "pilot"])
def test_cancel_stops_a_running_launch_and_keeps_outputs(slurm: dict, site: str, tmp_path: Path, mode: str) -> None:
    env = slurm["env"]
    run = tmp_path / "run"
    cli(env, "launch", "--site", site, TINY, "--mode", mode, "--profile", "slow", "--run-dir", str(run),
        "--time", "00:10:00")
    wait(env, run, lambda st: st["stages"].get("prepare", {}).get("state") == "done"
         and st["stages"].get("train", {}).get("state") == "running", timeout=180)
    out = cli(env, "cancel", str(run)).stdout
    assert "cancelled jobs:" in out
    st = wait(env, run, lambda s: all(j["state"] in ("cancelled", "failed", "done", "unknown") for j in s["jobs"]),
              timeout=60)[-1]
    train_job = next(j for j in st["jobs"] if j["key"] == ("train" if mode == "batch" else "pilot"))
    assert train_job["state"] in ("cancelled", "unknown")
    assert (run / "stages" / "prepare" / "_done.json").is_file()  # finished outputs stay
    assert (run / "stages" / "prepare" / "data.json").is_file()
    assert not (run / "stages" / "train" / "_done.json").exists()
    for _ in range(30):  # the job leaves the queue once its processes are gone (COMPLETING until then)
        q = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, env=env).stdout.split()
        if train_job["job_id"] not in q:
            break
        time.sleep(2)
    assert train_job["job_id"] not in q
    # nothing started for this run keeps running (Radical Pilot's agents included, which rename
    # themselves, e.g. `rp.agent_executing.0000`: found by their working folder too)
    for _ in range(20):
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        left = own_pids(run)
        if str(run) not in ps and not left:
            break
        time.sleep(2)
    assert str(run) not in ps, [line for line in ps.splitlines() if str(run) in line][:5]
    assert not left, {pid: Path(f"/proc/{pid}/cmdline").read_bytes()[:80] for pid in left if Path(f"/proc/{pid}").exists()}


DEMO = Path(__file__).resolve().parents[2] / "pipelines" / "demo.yaml"


@pytest.mark.skipif(not DEMO.is_file(), reason="pipelines/demo.yaml is not in this checkout yet")
@pytest.mark.parametrize("mode", ["pilot"])  # batch mode runs 8 jobs one after another (~6 min here): by hand
def test_demo_small_profile(slurm: dict, tmp_path: Path, mode: str) -> None:
    """The shipped demo pipeline (small profile) through `launch --site local-slurm`."""
    env = slurm["env"]
    run = tmp_path / "run"
    cli(env, "launch", "--site", "local-slurm", str(DEMO), "--profile", "small", "--mode", mode,
        "--run-dir", str(run), "--time", "00:30:00")
    seen = wait(env, run, finished, timeout=900)
    assert seen[-1]["run"] == "done", cli(env, "logs", str(run), "--tail", "30", check=False).stdout[-4000:]
    assert all(s["state"] == "done" for s in seen[-1]["stages"].values())
