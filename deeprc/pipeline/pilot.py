"""Runner `pilot`: one Radical Pilot session and pilot per run, warm raptor MPI workers.

The Radical Pilot session itself (and everything else RP-specific) lives in deeprc.rp: this module is
the DAG engine's backend on a :class:`deeprc.rp.session.Pilot`.

Python stages run as MPI function tasks on raptor workers that stay up for the whole run (so
torch, neuralforecast and the stage modules are imported once per worker rank); TensorFlow
multi-worker stages and command stages run as executable tasks with `ranks` under the pilot's
launch method. Independent stages are submitted together and run side by side when there is room.
"""

from __future__ import annotations

import os
import queue
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deeprc.errors import DeepRCError
from deeprc.pipeline.commands import is_local, oversubscribe_env, stage_env
from deeprc.pipeline.engine import Completion
from deeprc.pipeline.pilot_layout import (Layout, allocation, check_fits, oversubscribed, raptor_failure,
                                          start_timeout, worker_ranks)
from deeprc.pipeline.pilot_tasks import PilotTasks
from deeprc.pipeline.runfolder import RunFolder
from deeprc.pipeline.spec import Pipeline, Stage
from deeprc.pipeline import taskenv
from deeprc.rp.session import LOCAL_CORES, Pilot

if TYPE_CHECKING:
    from deeprc.sites import Site


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask), the local run's real core budget."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class PilotBackend:
    """The engine's backend on a `Pilot` (its own, or one shared across runs)."""

    name = "pilot"
    capacity = None
    core_budget: int | None = None

    def __init__(self, site: Site | None = None, site_name: str = "local", cores: int | None = None,
                 pilot: Pilot | None = None) -> None:
        self.site, self.site_name, self.cores = site, site_name, cores
        self.shared = pilot is not None
        self.pilot = pilot
        self.run: RunFolder | None = None
        self.pipe: Pipeline | None = None
        self.events: queue.Queue = queue.Queue()
        self.tasks: dict[str, tuple[str, Any]] = {}  # uid -> (stage, task)
        self._started: set[str] = set()
        self._aborted = False
        self._held: dict[str, tuple[Stage, Any]] = {}  # function stages waiting for the worker's probe
        self._alias: dict[str, str] = {}  # engine's task id of a held stage -> RP uid once submitted
        self._early: list[Completion] = []  # held stages canceled before they were submitted
        self._deadline = 0.0
        self._next_look = 0.0
        self._told = False  # the warm worker's hosts are in logs/pilot.log
        self.broker: taskenv.Broker | None = None
        self.keys: dict[str, str | None] = {}  # uid -> the attempt's secret key (revoked when it ends)
        self.secret_env: dict[str, str] = {}
        self._key: str | None = None
        self.programs = PilotTasks(site, Path("."), Path("."))  # what each stage runs; set for the run in start()

    def start(self, run: RunFolder, pipe: Pipeline) -> None:
        self.boot(self.plan(run, pipe))

    def plan(self, run: RunFolder, pipe: Pipeline) -> Layout | None:
        """The core budget (and a real allocation's layout, checked against the stages); fast, starts nothing."""
        self.run, self.pipe = run, pipe
        layout = None
        if oversubscribed(self.site):
            # RP's slots are oversubscribed here (local.localhost's 8, or a site's `rp:` overrides, so the
            # raptor master, its worker and an executable stage all fit): the real cores, or --cores,
            # bound what runs at once
            self.core_budget = self.cores or usable_cores()
        elif self.pilot is None:
            # a real allocation (one node or several): RP gets spare slots for the runtime's own idle
            # processes, DeepRC's budget is the allocation's real cores (deeprc.pipeline.pilot_layout)
            layout = allocation(self.site, self.cores)
            check_fits(pipe, layout)
            self.core_budget = layout.cores
        # this run's wrappers (a shared pilot's worker keeps the ones it started with)
        self.programs = PilotTasks(self.site, run.path, run.path / "rp",
                                   worker_gpus=any(s.gpus_per_rank for s in pipe.stages if not s.executable))
        self.programs.write()
        return layout

    def boot(self, layout: Layout | None) -> None:
        """Start the pilot (unless shared), check the stages fit its worker, listen to its tasks."""
        assert self.run is not None and self.pipe is not None
        run, pipe, local, programs = self.run, self.pipe, is_local(self.site), self.programs
        if self.pilot is None:
            if layout is not None:
                self.pilot = Pilot(self.site, self.site_name, worker_ranks=worker_ranks(pipe, layout.cores),
                                   base=run.path / "rp", layout=layout, programs=programs).start()
            else:
                py = [s.ranks for s in pipe.stages if not s.executable]
                ex = [s.ranks * s.cores_per_rank for s in pipe.stages if s.executable]
                cores = max(self.cores or LOCAL_CORES, LOCAL_CORES if local else 1)
                room = max(1, cores - 1 - (max(ex) if ex else 0))
                busy = min(sum(py) or 1, self.core_budget or room)  # function ranks that can run at once
                workers = max(max(py, default=1), min(busy, room))
                self.pilot = Pilot(self.site, self.site_name, cores=cores, worker_ranks=workers,
                                   base=run.path / "rp", programs=programs).start()
        for s in pipe.stages:
            if not s.executable and s.ranks > self.pilot.worker_ranks:
                raise DeepRCError(
                    f"{pipe.source or 'pipeline'}: field 'stages ({s.name}).ranks': {s.ranks} ranks but the pilot's "
                    f"raptor worker has {self.pilot.worker_ranks}. Fix: lower ranks or start the run with more --cores.")
        self._deadline = self.pilot.probe_submitted + start_timeout()
        self.secret_env = taskenv.broker_env(self.site)
        if self.secret_env:
            self.broker = taskenv.Broker(taskenv.broker_host(self.site, local))
        self.pilot.listeners.append(self._callback)

    def _callback(self, task: Any, state: str) -> None:
        if task.uid in self.tasks or task.name == "deeprc.probe" or task.uid in self.pilot.raptor_states:
            self.events.put((task.uid, state, time.time()))  # the probe and raptor states wake _watch

    def submit(self, stage: Stage, attempt: int) -> str:
        import radical.pilot as rp

        assert self.run is not None and self.pilot is not None
        self.run.stage_dir(stage.name).mkdir(parents=True, exist_ok=True)
        log = self.run.log_path(stage.name)
        if stage.executable:
            argv = self.programs.stage_argv(stage, attempt)
            executable, arguments = self.programs.executable(stage, self._task_blob(stage, attempt, argv))
            with open(log, "a") as f:
                f.write(f"--- attempt {attempt}: executable task on {stage.ranks} rank(s): {executable} "
                        f"{' '.join(arguments[:-1])} <task> -> {' '.join(argv)}\n")
            td = rp.TaskDescription({
                "mode": rp.TASK_EXECUTABLE, "executable": executable, "arguments": arguments,
                "ranks": stage.ranks, "cores_per_rank": stage.cores_per_rank,
            })
            if stage.gpus_per_rank:
                td.gpus_per_rank = stage.gpus_per_rank
            layout = self.pilot.layout
            if layout is not None and stage.ranks * stage.cores_per_rank > layout.cores_per_node:
                td.ranks_per_node = max(1, layout.cores_per_node // stage.cores_per_rank)  # spread as real cores are
        else:
            from deeprc.pipeline.entry import run_in_worker

            if not self.pilot.worker_ready:  # held until the warm worker answered its probe
                alias = f"held.{stage.name}.{attempt}"
                self._held[alias] = (stage, attempt)
                return alias
            td = rp.TaskDescription({
                "mode": rp.TASK_FUNCTION, "ranks": stage.ranks, "raptor_id": self.pilot.master.uid,
                "function": rp.PythonTask(run_in_worker, args=(self._task_blob(stage, attempt),), kwargs={"comm": None}),
            })
        td.name = f"{stage.name}.{attempt}"
        task = self.pilot.tmgr.submit_tasks(td)
        self.tasks[task.uid] = (stage.name, task)
        self.keys[task.uid] = self._key
        return task.uid

    def _watch(self) -> None:
        """Release held function stages once the worker answered; end the run, with the reason, when the
        worker does not answer in time or a raptor process ended under a running pilot."""
        assert self.pilot is not None
        ended = self.pilot.raptor_ended()
        held = [st.name for st, _ in self._held.values()]
        if ended and (held or any(self.pipe and not self.pipe.stage(n).executable for n, _ in self.tasks.values())):
            raise self.pilot.stall(held, ended=ended)
        if self.pilot.worker_ready:
            if not self._told and self.run is not None and self.pilot.worker_hosts:
                self._told = True  # once per run, held stages or not (some may have run on the launcher meanwhile)
                hosts = sorted(set(self.pilot.worker_hosts))
                pythons = sorted({f"{p[1]}{' in the image' if p[2] else ''}" for p in self.pilot.worker_places})
                self.run.log("pilot", f"pilot: warm worker answered on {len(self.pilot.worker_hosts)} rank(s), "
                                 f"host(s) {', '.join(hosts)}, python {', '.join(pythons)}")
            if self._held:
                for alias, (stage, attempt) in list(self._held.items()):
                    del self._held[alias]
                    self._alias[alias] = self.submit(stage, attempt)
            return
        if not self._held:
            return
        now = time.time()
        if now >= self._next_look:  # a raptor rank that failed to start the probe never answers: look every 2 s
            self._next_look = now + 2.0
            failure = raptor_failure(self.pilot.base, self.pilot.session_id)
            if failure:
                raise self.pilot.stall(held)
        if self.pilot.probe_error or now > self._deadline:
            if self.pilot.probe_error:
                self.pilot.raptor_states["probe"] = self.pilot.probe_error
            raise self.pilot.stall(held)

    def _task_blob(self, stage: Stage, attempt: int, argv: list[str] | None = None) -> str:
        """The task's one argument (deeprc.pipeline.taskenv): its environment, command and log, and a
        one-time key for its secrets; nothing RP would write into a script as text."""
        assert self.run is not None
        env = {**stage_env(self.run.path, stage, attempt), "DEEPRC_LOG": str(self.run.log_path(stage.name)),
               **(oversubscribe_env() if self.pilot is not None and self.pilot.local else {})}
        if argv is not None and not self.programs.imaged:  # inside an image, the image's own PATH
            env["PATH"] = os.environ.get("PATH", "")
        self._key = self.broker.offer(self.secret_env, stage.ranks) if self.broker else None
        return taskenv.pack(env, self._key, argv, str(self.run.log_path(stage.name)) if argv else None)

    def poll(self, timeout: float) -> list[Completion]:
        import radical.pilot as rp

        assert self.run is not None
        self._watch()
        out, self._early = self._early, []
        deadline = time.time() + timeout
        if out:
            deadline = time.time()
        while True:
            try:
                uid, state, t = self.events.get(timeout=max(0.0, deadline - time.time()))
            except queue.Empty:
                return out
            if uid not in self.tasks:
                self._watch()
                continue
            stage, task = self.tasks[uid]
            kind = self.pipe.stage(stage).kind if self.pipe else "function"
            if state == rp.AGENT_EXECUTING and uid not in self._started and kind != "function":
                self._started.add(uid)  # function stages log their own start (deeprc.pipeline.entry)
                self.run.event(stage, uid, "started", t)
            elif state in rp.FINAL:
                del self.tasks[uid]
                if self.broker:
                    self.broker.revoke(self.keys.pop(uid, None))
                ok = state == rp.DONE and not task.exit_code
                detail = ""
                if not ok:
                    detail = f"task {uid} ended {state}"
                    if task.exception:
                        detail += f": {task.exception}"
                    if task.stderr and not task.exception:
                        detail += f": {task.stderr.strip().splitlines()[-1] if task.stderr.strip() else ''}"
                out.append(Completion(stage, uid, ok, detail))
                deadline = time.time()  # return what we have, without waiting more
            if time.time() >= deadline and out:
                return out

    def cancel(self, task: str) -> None:
        if task in self._held:
            stage, _ = self._held.pop(task)
            self._early.append(Completion(stage.name, task, False, "canceled before the warm worker answered"))
            return
        task = self._alias.get(task, task)
        if self.pilot is not None and task in self.tasks:
            self.pilot.tmgr.cancel_tasks([task])

    def cancel_all(self) -> None:
        self._aborted = True
        self._held.clear()
        if self.pilot is not None and self.tasks:
            try:
                self.pilot.tmgr.cancel_tasks(list(self.tasks))
            except Exception:
                pass

    def close(self) -> None:
        if self.pilot is None:
            return
        if self._callback in self.pilot.listeners:
            self.pilot.listeners.remove(self._callback)
        if self.broker:
            self.broker.close()
            self.broker = None
        if not self.shared:
            self.pilot.close(abort=self._aborted)
