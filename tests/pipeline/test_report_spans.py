"""The report's task spans from a timeline written by several runner processes (batch jobs)."""

from deeprc.pipeline.report import task_spans


def ev(stage: str, task: str, event: str, t: float, **extra: object) -> dict:
    return {"stage": stage, "task": task, "event": event, "t": t, **extra}


def test_each_job_numbering_its_task_from_one_still_gives_one_span_per_stage_attempt() -> None:
    timeline = [
        ev("prep", "batch.0001", "queued", 1.0, attempt=1), ev("prep", "batch.0001", "started", 1.5, attempt=1),
        ev("prep", "batch.0001", "finished", 3.0, attempt=1),
        ev("train", "batch.0001", "queued", 4.0, attempt=1), ev("train", "batch.0001", "started", 4.2, attempt=1),
        ev("train", "batch.0001", "failed", 5.0, attempt=1),
        # the job resubmitted for train's second attempt numbers its task from 1 again
        ev("train", "batch.0001", "queued", 6.0, attempt=2), ev("train", "batch.0001", "started", 6.1, attempt=2),
        ev("train", "batch.0001", "finished", 9.0, attempt=2),
        ev("cached", "-", "cached", 9.5),
    ]
    spans = task_spans(timeline)
    assert [(s["stage"], s["queued"], s["ended"], s["ok"]) for s in spans] == [
        ("prep", 1.0, 3.0, True), ("train", 4.0, 5.0, False), ("train", 6.0, 9.0, True)]
