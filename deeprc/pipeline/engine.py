"""The DAG loop shared by both runners: readiness, resume, retries, timeouts, skips, signals.

A backend (pilot or batch) only starts a stage attempt, reports completions and cancels;
the engine decides what runs when and keeps the run folder's status and timeline.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from deeprc.errors import DeepRCError
from deeprc.pipeline.runfolder import RunFolder
from deeprc.pipeline.spec import Pipeline, Stage


@dataclass
class Completion:
    """What a backend reports when a stage attempt ends."""

    stage: str
    task: str
    ok: bool
    detail: str = ""


class Backend(Protocol):
    name: str
    capacity: int | None  # most stage attempts at once (None: as many as are ready)
    core_budget: int | None  # most cores (ranks x cores_per_rank) busy at once (None: no limit)

    def start(self, run: RunFolder, pipe: Pipeline) -> None: ...
    def submit(self, stage: Stage, attempt: int) -> str: ...
    def poll(self, timeout: float) -> list[Completion]: ...
    def cancel(self, task: str) -> None: ...
    def cancel_all(self) -> None: ...
    def close(self) -> None: ...


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived while the run was going."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class RunResult:
    state: str  # done | failed | canceled
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    signum: int | None = None  # the signal that canceled the run


def _raise_signal(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


def _cores(stage: Stage) -> int:
    return stage.ranks * stage.cores_per_rank


class Engine:
    """Run the selected stages of `pipe` in `run` through `backend`."""

    def __init__(self, pipe: Pipeline, run: RunFolder, backend: Backend, *, only: list[str] | None = None,
                 resume: bool = True, on_change: Callable[[], None] | None = None,
                 say: Callable[[str], None] | None = None) -> None:
        self.pipe, self.run, self.backend = pipe, run, backend
        self.resume = resume
        self.on_change = on_change or (lambda: None)
        self.say = say or (lambda msg: None)
        self.selected = [s.name for s in pipe.stages] if not only else list(only)
        for name in self.selected:
            pipe.stage(name)  # unknown names raise
        self.state: dict[str, str] = {n: "pending" for n in self.selected}
        self.attempts: dict[str, int] = {n: 0 for n in self.selected}
        self.running: dict[str, tuple[str, float]] = {}  # stage -> (task id, start time)
        self.timed_out: set[str] = set()  # task ids canceled for their stage's timeout

    # helpers -----------------------------------------------------------------
    def _deps_ok(self, stage: Stage) -> bool | None:
        """True: inputs ready; False: an input failed; None: still waiting."""
        for d in stage.depends_on:
            if d in self.state:
                st = self.state[d]
                if st in ("failed", "skipped", "canceled"):
                    return False
                if st not in ("done", "cached"):
                    return None
            elif not (self.run.stage_dir(d) / "_done.json").exists():
                raise DeepRCError(
                    f"stage '{stage.name}' needs the outputs of '{d}', which are not in {self.run.path}/stages/{d} "
                    f"(no _done.json). Fix: run '{d}' first (add --stage {d}) or run the whole pipeline."
                )
        return True

    def _set(self, name: str, state: str, **extra: Any) -> None:
        self.state[name] = state
        self.run.set_stage(name, state=state, **extra)
        self.on_change()

    def _submit(self, stage: Stage) -> None:
        self.attempts[stage.name] += 1
        n = self.attempts[stage.name]
        task = self.backend.submit(stage, n)
        now = time.time()
        self.running[stage.name] = (task, now)
        self.run.event(stage.name, task, "queued", now, attempt=n, runner=self.backend.name)
        self._set(stage.name, "running", attempts=n, started=now, finished=None, task=task,
                  log=str(self.run.log_path(stage.name)))

    def _finish(self, c: Completion) -> None:
        stage = self.pipe.stage(c.stage)
        task, _ = self.running.pop(c.stage)
        ok = c.ok
        detail = c.detail
        if task in self.timed_out:
            self.timed_out.discard(task)
            ok, detail = False, (f"timed out: the attempt ran longer than its timeout of {stage.timeout:g} s and was "
                                 "canceled (raise 'timeout' in the pipeline if the work is just slow)")
        missing = self.run.missing_outputs(stage) if ok else []
        if missing:
            ok, detail = False, f"declared outputs missing in {self.run.stage_dir(stage.name)}: {', '.join(missing)}"
        now = time.time()
        self.run.event(stage.name, task, "finished" if ok else "failed", now, attempt=self.attempts[c.stage])
        if ok:
            done = self.run.mark_done(self.pipe, stage, {"runner": self.backend.name, "attempts": self.attempts[c.stage],
                                                          "finished": now})
            self._set(stage.name, "done", finished=now, metrics=done.get("metrics", {}))
            self.say(f"[green]done[/] {stage.name} ({now - self.run.status['stages'][stage.name]['started']:.1f} s)")
            return
        self.run.log(stage.name, f"--- attempt {self.attempts[c.stage]} failed: {detail}")
        if self.attempts[c.stage] <= stage.retries:
            self.say(f"[yellow]retry[/] {stage.name}: attempt {self.attempts[c.stage]} failed ({detail.splitlines()[0] if detail else 'error'})")
            self._submit(stage)
            return
        self._set(stage.name, "failed", finished=now, error=detail)
        self.say(f"[red]failed[/] {stage.name} after {self.attempts[c.stage]} attempt(s); log: {self.run.log_path(stage.name)}")
        for dep in self.pipe.dependants(stage.name):
            if self.state.get(dep) == "pending":
                self._set(dep, "skipped", error=f"upstream stage '{stage.name}' failed")

    # main loop ---------------------------------------------------------------
    def _step(self) -> bool:
        """Start what is ready; return False when nothing runs and nothing can start.

        With a core budget, ready stages start largest first while they fit, and smaller ones fill
        the cores left (one stage always starts when nothing runs, whatever its size).
        """
        cap = self.backend.capacity
        budget = self.backend.core_budget
        ready = []
        for name in self.selected:
            if self.state[name] != "pending":
                continue
            stage = self.pipe.stage(name)
            ok = self._deps_ok(stage)
            if ok is False:
                self._set(name, "skipped", error="an upstream stage failed")
                continue
            if ok is None:
                continue
            if self.resume and self.run.is_done(self.pipe, stage):
                self._set(name, "cached")
                self.run.event(name, "-", "cached")
                self.say(f"[cyan]cached[/] {name} (outputs and input hashes unchanged)")
                continue
            ready.append(stage)
        if budget is not None:
            ready.sort(key=lambda s: -_cores(s))  # stable: spec order among equals
        busy = sum(_cores(self.pipe.stage(n)) for n in self.running)
        for stage in ready:
            if cap is not None and len(self.running) >= cap:
                break
            if budget is not None and self.running and busy + _cores(stage) > budget:
                continue
            self.run.clear_done(stage.name)
            self._submit(stage)
            busy += _cores(stage)
        return bool(self.running) or any(
            s == "pending" and self._deps_ok(self.pipe.stage(n)) is not False for n, s in self.state.items())

    def _check_timeouts(self) -> None:
        now = time.time()
        for name, (task, t0) in list(self.running.items()):
            limit = self.pipe.stage(name).timeout
            if limit and now - t0 > limit:
                if task in self.timed_out:
                    continue
                self.run.log(name, f"--- attempt {self.attempts[name]} exceeded its timeout of {limit:g} s; canceling")
                self.timed_out.add(task)
                self.backend.cancel(task)

    def check_selection(self) -> None:
        """With --stage: every input of a selected stage is selected too or already finished."""
        for name in self.selected:
            self._deps_ok(self.pipe.stage(name))

    def execute(self) -> RunResult:
        self.check_selection()
        t0 = time.time()
        # signals reach the main thread only (a warm pilot's daemon runs engines in threads and stops them
        # through their backend's poll)
        main = threading.current_thread() is threading.main_thread()
        old = {s: signal.signal(s, _raise_signal) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
        result = RunResult(state="failed")
        try:
            self.run.set_run("starting", runner=self.backend.name, started=t0, error=None)
            self.backend.start(self.run, self.pipe)
            self.run.set_run("running")
            while self._step():
                for c in self.backend.poll(0.2):
                    self._finish(c)
                self._check_timeouts()
                self.on_change()
            failed = [n for n, s in self.state.items() if s in ("failed", "skipped")]
            result.state = "failed" if failed else "done"
            result.failed = failed
        except Interrupted as exc:
            for s in old:
                signal.signal(s, signal.SIG_IGN)
            self.say(f"[red]{exc}[/]: canceling {len(self.running)} running task(s), keeping finished outputs")
            result.state = "canceled"
            result.signum = exc.signum
            result.failed = list(self.running)
            self._cancel_running()
        except BaseException as exc:
            self._cancel_running()
            if isinstance(exc, DeepRCError):  # `status` shows why the run ended (a pilot that stalled, say)
                self.run.set_run("failed", error=str(exc))
            raise
        finally:
            for s in old:  # closing is bounded: a signal now must not cut it short (RP would be left running)
                signal.signal(s, signal.SIG_IGN)
            try:
                self.backend.close()
            finally:
                for s, h in old.items():
                    signal.signal(s, h)
                result.wall_s = time.time() - t0
                self.run.collect_metrics()
                self.run.set_run(result.state, finished=time.time(), wall_s=result.wall_s)
                self.on_change()
        result.stages = self.run.status.get("stages", {})
        return result

    def _cancel_running(self) -> None:
        try:
            self.backend.cancel_all()
        finally:
            now = time.time()
            for name, (task, _) in list(self.running.items()):
                self.run.event(name, task, "failed", now, reason="canceled")
                self._set(name, "canceled", finished=now)
            self.running.clear()
            for n, s in self.state.items():
                if s == "pending":
                    self._set(n, "canceled")
