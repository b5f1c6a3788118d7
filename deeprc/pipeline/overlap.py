"""Stages that start while the pilot boots (issue 18, "cold start overlapped").

A fresh pilot takes seconds before its agent runs tasks and longer before its warm raptor worker
answers. Meanwhile stages that gain nothing from warm workers (executable and TensorFlow stages, and
function stages that are not PyTorch, such as the data-engine preprocessing) start on the launcher,
exactly as the batch runner starts them, within the same core budget the engine keeps for the
pilot. Once the pilot can take a stage, every later stage goes to it. PyTorch function stages always
wait for the warm worker (its imports are what they would otherwise pay for).
`DEEPRC_PILOT_OVERLAP=0` turns this off (every stage waits for the pilot, as before).
"""

from __future__ import annotations

import os
import time
from typing import Any

from deeprc.pipeline.batch import BatchBackend
from deeprc.pipeline.engine import Completion
from deeprc.pipeline.runfolder import RunFolder
from deeprc.pipeline.spec import Pipeline, Stage
from deeprc.settings import env_choice

POLL_SLICE_S = 0.05  # how long one look at the pilot waits while launcher stages run too


def overlap_enabled() -> bool:
    return env_choice("DEEPRC_PILOT_OVERLAP", ("1", "0")) == "1"


def launcher_may_run(stage: Stage) -> bool:
    """True for a stage that warm raptor workers do not speed up (it may start on the launcher)."""
    return stage.executable or stage.framework != "torch"


class OverlapBackend:
    """The pilot backend, with the launcher taking eligible stages until the pilot can run them."""

    name = "pilot"

    def __init__(self, pilot_backend: Any, site: Any = None) -> None:
        self.pilot = pilot_backend
        self.launcher = BatchBackend(site)
        self.on_launcher: set[str] = set()  # task ids the launcher runs
        self.run: RunFolder | None = None

    @property
    def capacity(self) -> int | None:
        return self.pilot.capacity

    @property
    def core_budget(self) -> int | None:
        return self.pilot.core_budget

    def start(self, run: RunFolder, pipe: Pipeline) -> None:
        self.run = run
        self.launcher.start(run, pipe)
        self.pilot.start(run, pipe)

    def _pilot_takes(self, stage: Stage) -> bool:
        """Whether the pilot can start `stage` now (agent up for executables, warm worker for functions)."""
        import radical.pilot as rp

        p = self.pilot.pilot
        if p is None or p.pilot is None:
            return False
        if stage.executable:
            return p.pilot.state == rp.PMGR_ACTIVE
        return p.worker_ready

    def submit(self, stage: Stage, attempt: int) -> str:
        if launcher_may_run(stage) and not self._pilot_takes(stage):
            task = self.launcher.submit(stage, attempt)
            self.on_launcher.add(task)
            assert self.run is not None
            self.run.log("pilot", f"pilot: {stage.name} started on the launcher ({task}) while the pilot boots")
            return task
        return self.pilot.submit(stage, attempt)

    def poll(self, timeout: float) -> list[Completion]:
        deadline = time.time() + timeout
        while True:
            out = self.launcher.poll(0) if self.launcher.procs else []
            for c in out:
                self.on_launcher.discard(c.task)
            wait = 0.0 if out else (min(POLL_SLICE_S, timeout) if self.launcher.procs else timeout)
            out += self.pilot.poll(max(0.0, min(wait, deadline - time.time())))
            if out or time.time() >= deadline:
                return out

    def cancel(self, task: str) -> None:
        (self.launcher if task in self.on_launcher else self.pilot).cancel(task)

    def cancel_all(self) -> None:
        try:
            self.launcher.cancel_all()
        finally:
            self.on_launcher.clear()
            self.pilot.cancel_all()

    def close(self) -> None:
        try:
            self.launcher.close()
        finally:
            self.pilot.close()


def with_overlap(pilot_backend: Any, site: Any) -> Any:
    """`pilot_backend` wrapped so eligible stages start while its pilot boots (unless turned off)."""
    return OverlapBackend(pilot_backend, site) if overlap_enabled() else pilot_backend
