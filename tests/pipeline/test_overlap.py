"""Stages that start while a run's own pilot boots (deeprc.pipeline.overlap), with a real pilot."""

from __future__ import annotations

import json

from deeprc.pipeline.engine import Engine
from deeprc.pipeline.overlap import OverlapBackend, launcher_may_run
from deeprc.pipeline.pilot import PilotBackend
from deeprc.pipeline.runfolder import RunFolder
from deeprc.pipeline.spec import load_pipeline


def test_preprocessing_runs_on_the_launcher_while_the_pilot_boots(stagefns_on_path, tmp_path, write_spec):
    stages = [
        {"name": "prep", "function": "pipeline_stagefns:write", "ranks": 2, "outputs": ["out.json"]},
        {"name": "train", "function": "pipeline_stagefns:allreduce", "framework": "torch", "ranks": 2,
         "depends_on": ["prep"]},
    ]
    pipe = load_pipeline(write_spec(tmp_path, stages))
    assert [launcher_may_run(s) for s in pipe.stages] == [True, False]
    run = RunFolder(tmp_path / "run")
    run.create(pipe)
    backend = OverlapBackend(PilotBackend(cores=2), None)
    result = Engine(pipe, run, backend).execute()
    assert result.state == "done", result.stages
    pilot = backend.pilot.pilot
    events = {(e["stage"], e["event"]): e for e in run.timeline()}
    # prep ran on the launcher and was over before the warm worker answered; train waited for the worker
    assert events[("prep", "queued")]["task"].startswith("batch."), events
    assert 0 < events[("prep", "finished")]["t"] < pilot.ready_at, (events, pilot.ready_at)
    assert events[("train", "started")]["t"] >= pilot.ready_at
    assert "warm raptor worker" in run.log_path("train").read_text()
    assert "prep started on the launcher" in run.log_path("pilot").read_text()
    assert json.loads((run.stage_dir("train") / "out.json").read_text()) == {"value": 3.0, "size": 2}
