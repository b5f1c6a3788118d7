"""Pilot mode on the emulated 2-node Slurm: one pilot spanning both nodes, stages wider than a node,
cancel and resume, and the bounded, explained failures (a stage too wide, a worker that never answers)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cluster_helpers import REPO, assert_both_nodes

pytestmark = [pytest.mark.slow]
CLI = [sys.executable, "-m", "deeprc.cli"]
DEMO = str(REPO / "pipelines" / "demo.yaml")


def cli(cluster: dict, *args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env={**cluster["env"], **(env or {})}, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def status(cluster: dict, run: Path) -> dict:
    proc = cli(cluster, "status", str(run), "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def wait(cluster: dict, run: Path, until, timeout: float) -> dict:  # noqa: ANN001
    t0 = time.time()
    st: dict = {}
    while time.time() - t0 < timeout:
        st = status(cluster, run)
        if until(st):
            return st
        time.sleep(2)
    logs = cli(cluster, "logs", str(run)).stdout[-4000:]
    pytest.fail(f"run {run} did not get there in {timeout} s; last status {st}\n{logs}")


def over(st: dict) -> bool:
    return st["run"] in ("done", "failed", "canceled") and all(j["state"] != "running" and j["state"] != "queued"
                                                                for j in st["jobs"])


def result(run: Path, stage: str) -> dict:
    return json.loads((run / "stages" / stage / "_result.json").read_text())


@pytest.mark.timeout(1500)
def test_pilot_spans_both_nodes_cancel_and_resume(cluster: dict, tmp_path: Path) -> None:
    """The demo's `wide` profile (4-rank stages on 2 nodes x 2 cores) through `launch --mode pilot --nodes 2`:
    canceled once its data-engine stages are done, then relaunched; it resumes and finishes, with every wide
    stage's ranks on node1 and node2 and the warm worker's probe seen on both."""
    run = tmp_path / "run"
    launch = ["launch", "--site", cluster["site"], DEMO, "--mode", "pilot", "--nodes", "2", "--profile", "wide",
              "--run-dir", str(run)]
    proc = cli(cluster, *launch)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    st = wait(cluster, run, lambda s: s["stages"].get("prepare_forecast", {}).get("state") == "done" or over(s), 300)
    assert st["stages"]["prepare_forecast"]["state"] == "done", st
    proc = cli(cluster, "cancel", str(run))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    st = wait(cluster, run, over, 120)
    assert st["run"] in ("canceled", "failed"), st
    assert st["stages"]["prepare_forecast"]["state"] == "done"
    assert (run / "stages" / "prepare_forecast" / "_done.json").exists()
    first = result(run, "prepare_forecast")
    left = subprocess.run(["pgrep", "-f", str(run / "rp")], capture_output=True, text=True).stdout.split()
    assert not left, f"processes of the canceled pilot still run: {left}"

    proc = cli(cluster, *launch)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    st = wait(cluster, run, over, 900)
    assert st["run"] == "done", (st, cli(cluster, "logs", str(run)).stdout[-4000:])
    assert all(s["state"] in ("done", "cached") for s in st["stages"].values()), st["stages"]
    events = [json.loads(line) for line in (run / "timeline.jsonl").read_text().splitlines() if line.strip()]
    mine = [e["event"] for e in events if e["stage"] == "prepare_forecast"]
    assert "cached" in mine and mine.count("finished") == 1, f"the rerun did not resume: {mine}"
    assert result(run, "prepare_forecast") == first, "a finished stage's result was rewritten"
    for stage in ("prepare_forecast", "prepare_hydrology", "train_hydrology"):
        r = result(run, stage)
        assert r["ranks"] == 4, (stage, r)
        assert_both_nodes(cluster, r["hosts"], 4)
    nhits = result(run, "train_nhits")
    assert nhits["ranks"] == 2 and nhits["launcher"] == "raptor", nhits  # Lightning DDP on the warm worker
    assert nhits["metrics"]["ranks"] == 2 and 0 < nhits["metrics"]["MASE"] < 10, nhits  # trained, scored on the held-out year
    assert "host(s) node1, node2" in (run / "logs" / "pilot.log").read_text()


def _salloc(cluster: dict, *args: str, timeout: float, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    """`deeprc-deploy ARGS` inside a fresh 2-node allocation (salloc runs it on this host, as a login node)."""
    cmd = ["salloc", "-N", "2", f"--ntasks-per-node={cluster['cores_per_node']}", "-p", cluster["partition"], "--time=5",
           *CLI, *args]
    return subprocess.run(cmd, env={**cluster["env"], **(env or {})}, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def test_stage_wider_than_the_allocation_fails_fast(cluster: dict, tmp_path: Path) -> None:
    """A 5-rank stage in a 2 x 2-core allocation: the pilot refuses it before starting, naming the stage,
    the ranks, the allocation and the fix; `launch` refuses it at plan time."""
    spec = tmp_path / "too-wide.yaml"
    spec.write_text(yaml.safe_dump({"name": "too-wide", "stages": [
        {"name": "wide", "command": ["true"], "ranks": 5}]}))
    t0 = time.time()
    proc = _salloc(cluster, "run", str(spec), "--site", cluster["site"], "--runner", "pilot",
                   "--run-dir", str(tmp_path / "run"), timeout=120)
    took = time.time() - t0
    err = proc.stderr
    assert proc.returncode != 0, proc.stdout + err
    assert "stages (wide).ranks" in err and "5 rank(s)" in err, err
    assert "2 node(s) x 2 core(s) = 4 cores" in err and "--nodes 3" in err, err
    assert "Traceback" not in err
    assert took < 60, f"refusing took {took:.0f} s"
    assert not (tmp_path / "run" / "rp").exists(), "a pilot was started for a pipeline that cannot fit"
    proc = cli(cluster, "launch", "--site", cluster["site"], str(spec), "--mode", "pilot", "--dry-run")
    assert proc.returncode != 0 and "5 ranks need 3 nodes" in proc.stderr, proc.stderr


@pytest.mark.timeout(900)
def test_worker_that_never_answers_ends_the_run_with_the_reason(cluster: dict, tmp_path: Path) -> None:
    """A site whose srun starts MPI ranks without PMIx (`mpi.pmi: none`): the warm worker's ranks are singletons
    and never form one MPI world. The run ends within the start timeout with one paragraph (what it waited for,
    what RP reported, the fix), the executable stage that finished stays done, and the fixed site resumes."""
    data = yaml.safe_load(Path(cluster["site"]).read_text())
    data["mpi"]["pmi"] = "none"
    bad = tmp_path / "no-pmix.yaml"
    bad.write_text(yaml.safe_dump(data))
    spec = tmp_path / "two.yaml"
    spec.write_text(yaml.safe_dump({"name": "two", "stages": [
        {"name": "first", "command": ["sh", "-c", "hostname > \"$DEEPRC_OUTDIR/host.txt\""], "outputs": ["host.txt"]},
        # framework torch: it waits for the warm worker (others may start on the launcher while the pilot boots)
        {"name": "wide", "function": "deeprc.workloads.stages:prepare_forecast", "ranks": 4, "depends_on": ["first"],
         "framework": "torch",
         "params": {"dataset": "airpassengers", "horizon": 12, "input_size": 24}}]}))
    run = tmp_path / "run"
    t0 = time.time()
    proc = _salloc(cluster, "run", str(spec), "--site", str(bad), "--runner", "pilot", "--run-dir", str(run),
                   timeout=240, env={"DEEPRC_PILOT_START_TIMEOUT": "45"})
    took = time.time() - t0
    err = proc.stderr
    assert proc.returncode != 0, proc.stdout + err
    assert "did not answer its probe task within" in err, err
    assert "Stages held back: wide" in err and "mpi.pmi: pmix" in err and "rerun the same command" in err, err
    assert "raptor" in err and "Traceback" not in err.split("error:")[-1], err
    assert took < 45 + 90, f"the stalled run took {took:.0f} s to end"
    st = json.loads((run / "status.json").read_text())
    assert st["run"] == "failed" and "did not answer" in (st.get("error") or ""), st
    assert st["stages"]["first"]["state"] == "done"
    left = subprocess.run(["pgrep", "-f", str(run / "rp")], capture_output=True, text=True).stdout.split()
    assert not left, f"processes of the stalled pilot still run: {left}"

    proc = _salloc(cluster, "run", str(spec), "--site", cluster["site"], "--runner", "pilot", "--run-dir", str(run),
                   timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    st = json.loads((run / "status.json").read_text())
    assert st["stages"]["first"]["state"] == "cached" and st["stages"]["wide"]["state"] == "done", st
    assert_both_nodes(cluster, result(run, "wide")["hosts"], 4)
