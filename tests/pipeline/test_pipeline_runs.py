"""The pilot runner for real (one shared pilot) and the batch baseline on the same specs."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from deeprc.pipeline.cli import failure_error, run_pipeline
from deeprc.pipeline.report import task_spans
from deeprc.pipeline.runfolder import RunFolder



def spans_by_stage(run_dir):
    return {s["stage"]: s for s in task_spans(RunFolder(run_dir).timeline())}


def outputs(run_dir):
    return {n: json.loads((run_dir / "stages" / n / "out.json").read_text()) for n in "abcd"}


def test_pilot_dag_order_and_values(diamond_pilot):
    spec, result, run_dir, _ = diamond_pilot
    assert result.state == "done", result.stages
    sp = spans_by_stage(run_dir)
    assert sp["a"]["ended"] <= sp["b"]["started"] and sp["a"]["ended"] <= sp["c"]["started"]
    assert sp["d"]["started"] >= max(sp["b"]["ended"], sp["c"]["ended"])
    out = outputs(run_dir)
    # a=1; b=a+1; c=allreduce over 2 real ranks of (rank+1)=3; d=b+c+1
    assert out == {"a": {"value": 1, "size": 2}, "b": {"value": 2, "size": 1}, "c": {"value": 3.0, "size": 2},
                   "d": {"value": 6, "size": 1}}
    for n in "abcd":
        done = json.loads((run_dir / "stages" / n / "_done.json").read_text())
        assert done["input_hash"] and done["output_hash"]
    assert (run_dir / "stages" / "a" / "part-1.txt").read_text().startswith("a rank 1/2")
    status = json.loads((run_dir / "status.json").read_text())
    assert status["run"] == "done" and all(s["state"] == "done" for s in status["stages"].values())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["c"]["sum"] == 3.0
    assert (run_dir / "report.md").read_text().count("| c |") >= 1 and (run_dir / "plots" / "timeline.png").stat().st_size > 1000
    assert "warm raptor worker" in (run_dir / "logs" / "b.log").read_text()


def test_pilot_runs_independent_stages_concurrently(diamond_pilot):
    _, _, run_dir, _ = diamond_pilot
    sp = spans_by_stage(run_dir)
    b, c = sp["b"], sp["c"]
    assert b["started"] < c["ended"] and c["started"] < b["ended"], (b, c)


def test_pilot_keeps_to_the_core_budget(pilot, tmp_path, write_spec, diamond):
    """With 2 cores, c (2 ranks) and b (1 rank) cannot overlap: the larger starts first, then b."""
    spec = write_spec(tmp_path, diamond)
    result, run_dir = run_pipeline(spec, runner="pilot", run_dir=tmp_path / "run", pilot=pilot, quiet=True, cores=2)
    assert result.state == "done", result.stages
    sp = spans_by_stage(run_dir)
    assert sp["c"]["queued"] < sp["b"]["queued"], (sp["b"], sp["c"])
    assert sp["c"]["ended"] <= sp["b"]["queued"] + 0.05, (sp["b"], sp["c"])
    assert outputs(run_dir)["d"] == {"value": 6, "size": 1}


def test_resume_skips_then_reruns_changed(diamond_pilot, pilot):
    spec, _, run_dir, _ = diamond_pilot
    before = {n: (run_dir / "stages" / n / "_done.json").read_text() for n in "abcd"}
    t0 = time.time()
    result, _ = run_pipeline(spec, runner="pilot", run_dir=run_dir, pilot=pilot, quiet=True, cores=4)
    assert result.state == "done" and time.time() - t0 < 10
    assert {n: s["state"] for n, s in result.stages.items()} == dict.fromkeys("abcd", "cached")
    assert before == {n: (run_dir / "stages" / n / "_done.json").read_text() for n in "abcd"}
    # change b's params: b reruns, and d because b's output content changed; a and c stay cached
    doc = yaml.safe_load(spec.read_text())
    doc["stages"][1]["params"] = {"sleep": 0, "add": 5}
    spec.write_text(yaml.safe_dump(doc))
    result, _ = run_pipeline(spec, runner="pilot", run_dir=run_dir, pilot=pilot, quiet=True)
    assert {n: s["state"] for n, s in result.stages.items()} == {"a": "cached", "b": "done", "c": "cached", "d": "done"}
    assert outputs(run_dir)["d"]["value"] == 10  # (1 + 5) + 3 + 1
    # put the spec back so later tests see the original outputs
    doc["stages"][1]["params"] = {"sleep": 2}
    spec.write_text(yaml.safe_dump(doc))
    result, _ = run_pipeline(spec, runner="pilot", run_dir=run_dir, pilot=pilot, quiet=True)
    assert outputs(run_dir)["d"]["value"] == 6


def test_batch_gives_same_outputs(diamond_pilot, tmp_path):
    spec, _, pilot_dir, _ = diamond_pilot
    result, run_dir = run_pipeline(spec, runner="batch", run_dir=tmp_path / "batch", quiet=True)
    assert result.state == "done"
    assert outputs(run_dir) == outputs(pilot_dir)
    sp = spans_by_stage(run_dir)
    order = sorted(sp.values(), key=lambda s: s["queued"])
    assert [s["stage"] for s in order][0] == "a" and order[-1]["stage"] == "d"
    for x, y in zip(order, order[1:]):  # batch runs one stage at a time
        assert x["ended"] <= y["queued"] + 0.05
    assert "fresh process" in (run_dir / "logs" / "b.log").read_text()


def test_batch_with_cores_packs_independent_stages(diamond_pilot, tmp_path):
    """--cores 3: b (1 rank) and c (2 ranks) run side by side as fresh launcher calls, as a scheduler
    packs independent jobs; the DAG order and the outputs stay the same."""
    spec, _, pilot_dir, _ = diamond_pilot
    result, run_dir = run_pipeline(spec, runner="batch", run_dir=tmp_path / "packed", quiet=True, cores=3)
    assert result.state == "done" and outputs(run_dir) == outputs(pilot_dir)
    sp = spans_by_stage(run_dir)
    b, c = sp["b"], sp["c"]
    assert b["started"] < c["ended"] and c["started"] < b["ended"], (b, c)
    assert sp["a"]["ended"] <= min(b["queued"], c["queued"]) and sp["d"]["queued"] >= max(b["ended"], c["ended"])


def test_retry_then_failure_reported(pilot, tmp_path, write_spec):
    spec = write_spec(tmp_path, [
        {"name": "flaky", "function": "pipeline_stagefns:flaky", "ranks": 2, "retries": 1},
        {"name": "bad", "function": "pipeline_stagefns:broken", "retries": 1},
        {"name": "after_bad", "function": "pipeline_stagefns:write", "depends_on": ["bad"]},
        {"name": "after_flaky", "function": "pipeline_stagefns:write", "depends_on": ["flaky"]},
    ])
    result, run_dir = run_pipeline(spec, runner="pilot", run_dir=tmp_path / "run", pilot=pilot, quiet=True)
    st = result.stages
    assert result.state == "failed"
    assert st["flaky"]["state"] == "done" and st["flaky"]["attempts"] == 2
    assert st["after_flaky"]["state"] == "done"
    assert st["bad"]["state"] == "failed" and st["bad"]["attempts"] == 2
    assert st["after_bad"]["state"] == "skipped"
    log = (run_dir / "logs" / "bad.log").read_text()
    assert log.count("ValueError: this stage always fails") == 2 and "attempt 2 failed" in log
    msg = str(failure_error(result, run_dir))
    assert "'bad'" in msg and str(run_dir / "logs" / "bad.log") in msg and "after_bad" in msg
    assert failure_error(result, run_dir).exit_code == 1


def test_missing_declared_output_fails(pilot, tmp_path, write_spec):
    spec = write_spec(tmp_path, [{"name": "a", "function": "pipeline_stagefns:write", "outputs": ["nothere.csv"]}])
    result, run_dir = run_pipeline(spec, runner="pilot", run_dir=tmp_path / "run", pilot=pilot, quiet=True)
    assert result.stages["a"]["state"] == "failed" and "nothere.csv" in result.stages["a"]["error"]
    assert not (run_dir / "stages" / "a" / "_done.json").exists()


def test_executable_and_command_stages(pilot, tmp_path, write_spec):
    spec = write_spec(tmp_path, [
        {"name": "a", "function": "pipeline_stagefns:write", "framework": "tensorflow", "ranks": 2},
        {"name": "cmd", "command": ["sh", "-c", "echo rank $OMPI_COMM_WORLD_RANK > {outdir}/r$OMPI_COMM_WORLD_RANK.txt"],
         "ranks": 2, "depends_on": ["a"], "outputs": ["r0.txt", "r1.txt"]},
    ])
    result, run_dir = run_pipeline(spec, runner="pilot", run_dir=tmp_path / "run", pilot=pilot, quiet=True)
    assert result.state == "done", result.stages
    assert "fresh process" in (run_dir / "logs" / "a.log").read_text()  # exec task, not the warm worker
    assert json.loads((run_dir / "stages" / "a" / "out.json").read_text())["size"] == 2
    assert (run_dir / "stages" / "cmd" / "r1.txt").read_text().strip() == "rank 1"


def test_stage_option_needs_upstream(tmp_path, stagefns_on_path, write_spec, diamond):
    from deeprc.errors import DeepRCError

    spec = write_spec(tmp_path, diamond)
    with pytest.raises(DeepRCError, match=r"needs the outputs of 'a'.*--stage a"):
        run_pipeline(spec, runner="batch", run_dir=tmp_path / "run", stages=["b"], quiet=True)
    result, run_dir = run_pipeline(spec, runner="batch", run_dir=tmp_path / "run", stages=["a"], quiet=True)
    assert result.stages["a"]["state"] == "done" and result.stages["b"]["state"] == "pending"
    result, _ = run_pipeline(spec, runner="batch", run_dir=tmp_path / "run", stages=["b"], quiet=True)
    assert result.stages["b"]["state"] == "done"


def test_parallel_stage_jobs_share_status(tmp_path, stagefns_on_path, write_spec, diamond):
    """Two `run --stage` processes at once (as Slurm batch jobs of independent stages do) keep both states."""
    import subprocess
    import sys

    spec = write_spec(tmp_path, diamond)
    run_dir = tmp_path / "run"
    result, _ = run_pipeline(spec, runner="batch", run_dir=run_dir, stages=["a"], quiet=True)
    assert result.state == "done"
    procs = [subprocess.Popen([sys.executable, "-m", "deeprc.cli", "run", str(spec), "--runner", "batch",
                               "--run-dir", str(run_dir), "--stage", s], stdout=subprocess.DEVNULL)
             for s in ("b", "c")]
    assert [p.wait(300) for p in procs] == [0, 0]
    status = json.loads((run_dir / "status.json").read_text())
    assert {n: s["state"] for n, s in status["stages"].items()} == {"a": "done", "b": "done", "c": "done", "d": "pending"}
