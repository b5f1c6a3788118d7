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
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from deeprc.errors import DeepRCError
from deeprc.pipeline.batch import BatchBackend
from deeprc.pipeline.engine import Completion
from deeprc.pipeline.runfolder import RunFolder
from deeprc.pipeline.spec import Pipeline, Stage
from deeprc.settings import env_choice

if TYPE_CHECKING:
    from deeprc.pipeline.pilot import PilotBackend
    from deeprc.sites import Site

POLL_SLICE_S = 0.05  # how long one look at the pilot waits while launcher stages run too
BOOT_WAIT_S = 300.0  # longest wait for RP's session and pilot job to be set up (not the agent's start)


def overlap_enabled() -> bool:
    return env_choice("DEEPRC_PILOT_OVERLAP", ("1", "0")) == "1"


def launcher_may_run(stage: Stage) -> bool:
    """True for a stage that warm raptor workers do not speed up (it may start on the launcher)."""
    return stage.executable or stage.framework != "torch"


class OverlapBackend:
    """The pilot backend, booted in a thread, with the launcher taking eligible stages until the pilot can."""

    name = "pilot"

    def __init__(self, pilot_backend: PilotBackend, site: Site | None = None) -> None:
        self.pilot = pilot_backend
        # the launcher's stages get this process's environment as it is now (the pilot's start hides some
        # variables from RP for a while, deeprc.pipeline.taskenv.withheld); inside a Slurm allocation their
        # srun steps overlap the pilot's long-lived raptor steps (as RP's own do), or a step started after
        # the warm worker's would wait for its cores for ever
        self.launcher = BatchBackend(site, environ={**os.environ, "SLURM_OVERLAP": "1"})
        self.on_launcher: set[str] = set()  # task ids the launcher runs
        self.run: RunFolder | None = None
        self._boot: threading.Thread | None = None
        self._boot_error: BaseException | None = None
        self._waiting: dict[str, tuple[Stage, int]] = {}  # stages for the pilot, submitted once it started
        self._alias: dict[str, str] = {}  # a waiting stage's task id -> the pilot's
        self._early: list[Completion] = []  # waiting stages canceled before the pilot started
        self._boot_limit = 0.0  # when waiting stages give up on the pilot's start

    @property
    def capacity(self) -> int | None:
        return self.pilot.capacity

    @property
    def core_budget(self) -> int | None:
        return self.pilot.core_budget

    def start(self, run: RunFolder, pipe: Pipeline) -> None:
        self.run = run
        self.launcher.start(run, pipe)
        layout = self.pilot.plan(run, pipe)  # the budget is known before anything starts

        def boot() -> None:
            try:
                self.pilot.boot(layout)
            except BaseException as exc:  # raised in the engine's thread by the next poll
                self._boot_error = exc

        self._boot = threading.Thread(target=boot, name="deeprc-pilot-boot", daemon=True)
        self._boot.start()

    def _booted(self) -> bool:
        if self._boot_error is not None:
            err, self._boot_error = self._boot_error, None
            raise err
        return self._boot is not None and not self._boot.is_alive()

    def _pilot_takes(self, stage: Stage) -> bool:
        """Whether the pilot can start `stage` now (agent up for executables, warm worker for functions)."""
        import radical.pilot as rp

        if not self._booted():
            return False
        p = self.pilot.pilot
        return p.pilot.state == rp.PMGR_ACTIVE if stage.executable else p.worker_ready

    def submit(self, stage: Stage, attempt: int) -> str:
        if launcher_may_run(stage) and not self._pilot_takes(stage):
            task = self.launcher.submit(stage, attempt)
            self.on_launcher.add(task)
            assert self.run is not None
            self.run.log("pilot", f"pilot: {stage.name} started on the launcher ({task}) while the pilot boots")
            return task
        if not self._booted():
            alias = f"boot.{stage.name}.{attempt}"
            self._waiting[alias] = (stage, attempt)
            self._boot_limit = self._boot_limit or time.time() + BOOT_WAIT_S
            return alias
        return self.pilot.submit(stage, attempt)

    def pilot_base(self) -> str:
        return str(self.run.path / "rp") if self.run is not None else "the run's rp/ folder"

    def _release(self) -> bool:
        """Hand waiting stages to the pilot once its start returned; True when it has."""
        if not self._booted():
            if self._boot_limit and time.time() > self._boot_limit:
                raise DeepRCError(f"Radical Pilot's session and pilot job were not set up within {BOOT_WAIT_S:g} s. "
                                  f"Fix: see {self.pilot_base()} (RP's logs), or run with --runner batch.")
            return False
        for alias, (stage, attempt) in list(self._waiting.items()):
            del self._waiting[alias]
            self._alias[alias] = self.pilot.submit(stage, attempt)
        return True

    def poll(self, timeout: float) -> list[Completion]:
        deadline = time.time() + timeout
        while True:
            out, self._early = self._early, []
            out += self.launcher.poll(0) if self.launcher.procs else []
            for c in out:
                self.on_launcher.discard(c.task)
            if self._release():
                wait = 0.0 if out else (min(POLL_SLICE_S, timeout) if self.launcher.procs else timeout)
                out += self.pilot.poll(max(0.0, min(wait, deadline - time.time())))
            elif not out:
                time.sleep(min(POLL_SLICE_S, max(0.0, deadline - time.time())))
            if out or time.time() >= deadline:
                return out

    def cancel(self, task: str) -> None:
        if task in self._waiting:
            stage, _ = self._waiting.pop(task)
            self._early.append(Completion(stage.name, task, False, "canceled before the pilot started"))
            return
        (self.launcher if task in self.on_launcher else self.pilot).cancel(self._alias.get(task, task))

    def cancel_all(self) -> None:
        try:
            self.launcher.cancel_all()
        finally:
            self.on_launcher.clear()
            self._waiting.clear()
            self._settle()
            self.pilot.cancel_all()

    def _settle(self) -> None:
        """Let a pilot start in progress finish (bounded), so closing can end what it started."""
        if self._boot is not None:
            self._boot.join(BOOT_WAIT_S)
        self._boot_error = None

    def close(self) -> None:
        try:
            self.launcher.close()
        finally:
            self._settle()
            if self._boot is not None and self._boot.is_alive():  # still starting: end what it left running
                from deeprc.rp.reaping import stop_leftovers

                stop_leftovers(Path(self.pilot_base()))
            self.pilot.close()


def with_overlap(pilot_backend: PilotBackend, site: Site | None) -> PilotBackend | OverlapBackend:
    """`pilot_backend` wrapped so eligible stages start while its pilot boots (unless turned off)."""
    return OverlapBackend(pilot_backend, site) if overlap_enabled() else pilot_backend
