"""Runner `pilot`: one Radical Pilot session and pilot per run, warm raptor MPI workers.

Python stages run as MPI function tasks on raptor workers that stay up for the whole run (so
torch, neuralforecast and the stage modules are imported once per worker rank); TensorFlow
multi-worker stages and command stages run as executable tasks with `ranks` under the pilot's
launch method. Independent stages are submitted together and run side by side when there is room.
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from deeprc.errors import DeepRCError
from deeprc.pipeline.commands import is_local, oversubscribe_env, root_mpi_env, stage_env
from deeprc.pipeline.engine import Completion
from deeprc.pipeline.pilot_layout import (Layout, agent_interface, allocation, check_fits, oversubscribed,
                                          raptor_failure, sandbox_errors, stall_message, start_timeout, worker_ranks)
from deeprc.pipeline.pilot_tasks import PilotTasks
from deeprc.pipeline.runfolder import RunFolder
from deeprc.pipeline.spec import Pipeline, Stage
from deeprc.pipeline import taskenv
from deeprc.settings import check_rp_patches as check_patch_env

KILL_WAIT_S = 3.0  # how long closing waits for the launcher to report the pilot job ended
LOCAL_CORES = 8  # local.localhost offers 8 (oversubscribed) cores per node


def inside_allocation() -> bool:
    """This process runs inside a batch job of any registered scheduler (its job-id variable is set)."""
    from deeprc.schedulers import SCHEDULERS, get_scheduler

    return any(v in os.environ for v in (get_scheduler(n).job_id_var for n in SCHEDULERS if n != "local") if v)


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask), the local run's real core budget."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _prepare_env(local: bool) -> None:
    """RP's bootstrap looks up `radical-pilot-agent_0` and mpiexec on PATH: put this venv's bin first."""
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    if sys.prefix != sys.base_prefix:  # RP's `virtenv_mode: local` reuses the active venv
        os.environ.setdefault("VIRTUAL_ENV", sys.prefix)
    os.environ.update(root_mpi_env())
    if local:
        os.environ.update(oversubscribe_env())
    for var, val in (("RADICAL_REPORT", "FALSE"), ("RADICAL_LOG_LVL", "WARNING")):
        os.environ.setdefault(var, val)


# Bridges in RP 1.103's default agent config that no agent component uses (only `rp.Client`, which
# DeepRC does not use, talks on the client_* ones): each is a process the bootstrap starts in turn.
_UNUSED_AGENT_BRIDGES = ("raptor_scheduling_queue", "agent_schedule_pubsub", "client_pubsub", "client_queue")


def _lean_agent_config() -> dict[str, Any]:
    """RP's default agent config without the bridges nothing uses (about 2 s less pilot start-up here)."""
    import radical.pilot as rp
    import radical.utils as ru

    cfg = dict(ru.read_json(str(Path(rp.__file__).parent / "configs" / "agent_default.json")))
    cfg["bridges"] = {k: v for k, v in cfg.get("bridges", {}).items() if k not in _UNUSED_AGENT_BRIDGES}
    return cfg


class Pilot:
    """A started RP session + pilot (+ one raptor master and MPI worker); shareable across runs."""

    def __init__(self, site: Any = None, site_name: str = "local", cores: int | None = None,
                 worker_ranks: int | None = None, base: str | Path | None = None, runtime_min: int = 1440,
                 layout: Layout | None = None, programs: PilotTasks | None = None) -> None:
        self.site, self.site_name = site, site_name
        self.programs = programs  # what the worker and executable stages run (inside the site's image, if any)
        self.layout = layout  # a real multi-core/multi-node allocation (None: RP's slots are oversubscribed)
        self.cores = cores or (layout.cores if layout else LOCAL_CORES)
        self.worker_ranks = worker_ranks or max(1, self.cores // 2)
        self.base = Path(base or os.environ.get("DEEPRC_RP_BASE", "/tmp/deeprc-rp")).resolve()
        self.runtime_min = runtime_min
        self.session: Any = None
        self.pilot: Any = None
        self.tmgr: Any = None
        self.pmgr: Any = None
        self.master: Any = None
        self.listeners: list[Any] = []
        self.started_s = 0.0
        self.raptor_states: dict[str, str] = {}  # master and worker task uid -> last RP state
        self.probe: Any = None  # the function task that proves the warm worker answers on all its ranks
        self.probe_submitted = 0.0
        self.worker_hosts: list[str] | None = None  # set once the probe came back
        self.worker_places: list[list] = []  # [host, python, in image, pid] per worker rank (the probe's answer)
        self.ready_at = 0.0  # when the probe came back (the warm worker answered on all its ranks)
        self.probe_error = ""

    def _resource(self) -> tuple[str, str | None]:
        """(resource label, access schema) after writing the RP resource config into our config dir.

        RP reads user configs from `$RADICAL_CONFIG_USER_DIR/.radical/pilot/configs`; we point that
        at this pilot's base folder so nothing in ~/.radical changes.
        """
        import radical.utils as ru

        os.environ["RADICAL_CONFIG_USER_DIR"] = str(self.base)
        cfg_dir = self.base / ".radical" / "pilot" / "configs"
        cfg_dir.mkdir(parents=True, exist_ok=True)
        label, cfg = self.site.rp_resource() if self.site is not None else ("local.localhost", None)
        inside = inside_allocation()
        if cfg is None and label == "local.localhost":
            import radical.pilot as rp

            shipped = Path(rp.__file__).parent / "configs" / "resource_local.json"
            cfg, label = dict(ru.read_json(str(shipped))["localhost"]), "deeprc.local"
            schema: str | None = "local"
        elif cfg is None:
            return label, None
        else:
            schema = "interactive" if inside else None
        # the bootstrap runs a login shell: keep this venv's bin (agent, mpiexec) first on PATH
        bindir = str(Path(sys.executable).parent)
        export = f"export PATH={shlex.quote(bindir)}:\"$PATH\""
        cfg["pre_bootstrap_0"] = [export, *self._agent_hooks(), *cfg.get("pre_bootstrap_0", [])]
        if self.layout is not None and "cores_per_node" not in dict(getattr(self.site, "rp", None) or {}):
            cfg["cores_per_node"] = self.layout.slots_per_node  # see deeprc.pipeline.pilot_layout
        iface = agent_interface(self.site) if self.layout is not None else None
        if iface:  # the agent's bridges must be reachable from every node (read by radical.utils.get_hostip)
            os.environ["RADICAL_DEFAULT_IFACE"] = iface
            cfg["pre_bootstrap_0"] = [*cfg.get("pre_bootstrap_0", []), f"export RADICAL_DEFAULT_IFACE={shlex.quote(iface)}"]
        if cfg.get("agent_config", "default") == "default":  # read by pmgr_launching from cfg_dir
            (cfg_dir / "agent_deeprc.json").write_text(json.dumps(_lean_agent_config(), indent=2))
            cfg["agent_config"] = "deeprc"
        lms = cfg.setdefault("launch_methods", {})
        for name in ("MPIEXEC", "MPIRUN"):  # LMs start from the login shell's env: give them ours
            if name in lms:
                lms[name] = {**lms[name], "pre_exec_cached": [export, *lms[name].get("pre_exec_cached", [])]}
        path = cfg_dir / "resource_deeprc.json"
        data = json.loads(path.read_text()) if path.is_file() else {}
        data[label.split(".", 1)[1]] = cfg
        path.write_text(json.dumps(data, indent=2))
        return label, schema

    def _hooks_dir(self) -> Path | None:
        """The folder holding :mod:`deeprc.pipeline.rp_sitecustomize` as `sitecustomize.py` (it trims RP's
        idle polling, start-up and close); None when `DEEPRC_RP_PATCHES=off`."""
        from deeprc.pipeline.rp_sitecustomize import patches

        if not patches():
            return None
        hooks = self.base / "rp_hooks"
        hooks.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(__file__).with_name("rp_sitecustomize.py"), hooks / "sitecustomize.py")
        return hooks

    def _agent_hooks(self) -> list[str]:
        """Shell lines that put the hooks folder first on the agent's PYTHONPATH."""
        hooks = self._hooks_dir()
        # RP passes these lines through its own `$` handling: `${VAR:+...}` does not survive it
        return [f'export PYTHONPATH={shlex.quote(str(hooks))}:"$PYTHONPATH"'] if hooks else []

    def start(self) -> "Pilot":
        self.local = is_local(self.site)
        _prepare_env(self.local)
        from deeprc.pipeline import rp_sitecustomize

        check_patch_env()
        # RP starts its agent through a login shell; only sites that load modules need one (rp_sitecustomize)
        site = self.site
        modules = site is not None and bool(site.module_reset or site.module_use or site.modules)
        os.environ["DEEPRC_RP_LOGIN_SHELL"] = "1" if modules else "0"
        rp_sitecustomize.install(warn=rp_sitecustomize.warn_line)  # the client's bridges and components
        import radical.pilot as rp

        t0 = time.time()
        taskenv.private_dir(Path(taskenv.check_rp_word(str(self.base), "the pilot's folder")))
        hidden = taskenv.withheld(self.site)  # RP's bootstrap dumps its environment to disk: no secrets there
        saved = {k: os.environ.get(k) for k in ("RADICAL_CONFIG_USER_DIR", "PYTHONPATH", *hidden)}
        try:
            for k in hidden:
                os.environ.pop(k, None)
            # the session reads the resource configs, the pilot manager's launcher the agent config;
            # the client's bridges and components, spawned meanwhile, load the hooks from PYTHONPATH
            resource, schema = self._resource()
            hooks = self._hooks_dir()
            if hooks:
                os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(hooks), saved["PYTHONPATH"]) if p)
            self.session = rp.Session(cfg={"base": str(self.base)})
            self.pmgr = pmgr = rp.PilotManager(session=self.session)
            pd: dict[str, Any] = {"resource": resource, "runtime": self.runtime_min, "sandbox": str(self.base / "sandbox")}
            if self.layout is not None:
                pd["nodes"] = self.layout.nodes  # RP counts slots_per_node on each
            else:
                pd["cores"] = self.cores
            if schema:
                pd["access_schema"] = schema
            self.pilot = pmgr.submit_pilots(rp.PilotDescription(pd))
            self.tmgr = rp.TaskManager(session=self.session)
        except BaseException:
            self.close()
            raise
        finally:  # leave the caller's environment as it was
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        try:
            self.tmgr.add_pilots(self.pilot)
            self.tmgr.register_callback(self._callback)
            self.master = self.pilot.submit_raptors(rp.TaskDescription({"mode": rp.RAPTOR_MASTER}))[0]
            path = [str(hooks) if hooks else "", *filter(taskenv.rp_safe, sys.path)]  # the worker's ranks load the hooks too
            env = {**root_mpi_env(), **(oversubscribe_env() if self.local else {}), "PYTHONPATH": os.pathsep.join(p for p in path if p)}
            worker: dict[str, Any] = {"mode": rp.RAPTOR_WORKER, "ranks": self.worker_ranks, "raptor_class": "MPIWorker",
                                      "environment": env}
            if self.programs is not None and self.programs.imaged:  # the worker's ranks live in the site's image
                env.update(self.programs.worker_env(hooks))
                worker["executable"] = self.programs.worker_executable()
            if self.layout is not None:  # one rank per real core, node by node
                worker["ranks_per_node"] = min(self.worker_ranks, self.layout.cores_per_node)
            workers = self.master.submit_workers([rp.TaskDescription(worker)])
            self.raptor_states = {t.uid: t.state for t in [self.master, *workers]}
            self._submit_probe()
        except BaseException:
            self.close()
            raise
        self.started_s = time.time() - t0
        return self

    def _submit_probe(self) -> None:
        import radical.pilot as rp

        from deeprc.pipeline.entry import probe_worker

        td = rp.TaskDescription({"mode": rp.TASK_FUNCTION, "ranks": self.worker_ranks, "raptor_id": self.master.uid,
                                 "function": rp.PythonTask(probe_worker, kwargs={"comm": None})})
        td.name = "deeprc.probe"
        self.probe = self.tmgr.submit_tasks(td)
        self.probe_submitted = time.time()

    @property
    def session_id(self) -> str:
        return str(self.session.uid) if self.session is not None else "-"

    @property
    def worker_ready(self) -> bool:
        return self.worker_hosts is not None

    def _probe_done(self, task: Any, state: str) -> None:
        import radical.pilot as rp

        if state != rp.DONE or task.exit_code:
            self.probe_error = f"probe task {task.uid} ended {state}: {task.exception or (task.stderr or '').strip()[-300:]}"
            return
        value = task.return_value
        while isinstance(value, list) and value and isinstance(value[0], list) and value[0] and isinstance(value[0][0], list):
            value = value[0]  # one copy per rank: every rank gathered the same list
        self.worker_places = [list(v) for v in value] if isinstance(value, list) else []
        self.worker_hosts = [str(v[0]) for v in self.worker_places]
        self.ready_at = time.time()

    def raptor_ended(self) -> str:
        """`uid STATE` of a raptor master or worker that ended while the pilot is up ('' if none)."""
        import radical.pilot as rp

        return ", ".join(f"{uid} {st}" for uid, st in self.raptor_states.items() if st in rp.FINAL)

    def stall(self, stages: list[str], ended: str = "") -> DeepRCError:
        """The no-progress error: what was waited for, what RP reported, the fix."""
        return DeepRCError(stall_message(
            waited_s=time.time() - self.probe_submitted, ranks=self.worker_ranks,
            per_node=min(self.worker_ranks, self.layout.cores_per_node) if self.layout else self.worker_ranks,
            layout=self.layout, states=dict(self.raptor_states), errors=sandbox_errors(self.base, self.session_id), stages=stages,
            base=self.base, ended=ended))

    def _callback(self, task: Any, state: str) -> None:
        import radical.pilot as rp

        if task.uid in self.raptor_states:
            self.raptor_states[task.uid] = state
        elif task.name == "deeprc.probe" and state in rp.FINAL:
            self._probe_done(task, state)
        for fn in list(self.listeners):
            try:
                fn(task, state)
            except Exception:  # a listener's bug must not kill RP's callback thread
                pass

    def close(self, abort: bool = False) -> None:
        """End the pilot job, close the RP session, then stop what it left behind under this pilot's base.

        `abort` (after a signal: Ctrl-C, scancel, walltime): stop every process under the base first,
        before a batch system's kill can cut the close short (RP's agent processes leave the job's tree).
        """
        if self.session is None:
            return
        import radical.pilot as rp

        if abort:
            stop_leftovers(self.base, grace=1.0)
        # have the launcher end the pilot job while it is still up: RP's own close asks the agent first
        # (1 s), then kills, and its launcher races its own shutdown (10 s more when it loses)
        elif self.pmgr is not None and self.pilot is not None and self.pilot.state not in rp.FINAL:
            try:
                self.pmgr.kill_pilots(self.pilot.uid, _timeout=KILL_WAIT_S)
            except Exception:
                pass
        if self.pilot is not None and self.pilot.state not in rp.FINAL:
            # nobody reported the end (the job was stopped here, or was gone already): tell RP's client
            # side the pilot is over, or its close waits for that again (11 s)
            if not abort:
                stop_leftovers(self.base, grace=1.0)
            try:
                self.pilot._update({"uid": self.pilot.uid, "state": rp.CANCELED})
            except Exception:
                pass
        try:
            self.session.close(download=False, terminate=True)
        except Exception:
            pass
        self.session = None
        stop_leftovers(self.base)


def _own_pids(base: Path) -> list[int]:
    """Processes whose working folder or command line lies under `base` (this pilot's own)."""
    import psutil

    mine, me, prefix = [], os.getpid(), str(base)
    for proc in psutil.process_iter(["pid", "cwd", "cmdline"]):
        info = proc.info
        if info["pid"] == me:
            continue
        cmd = " ".join(info["cmdline"] or [])
        if (info["cwd"] or "").startswith(prefix) or prefix in cmd:
            mine.append(info["pid"])
    return mine


def stop_leftovers(base: Path, grace: float = 2.0) -> None:
    """SIGTERM, then SIGKILL, the processes RP left running under `base` (e.g. MPI raptor workers)."""
    import psutil

    procs = []
    for pid in _own_pids(base):
        try:
            procs.append(psutil.Process(pid))
        except psutil.Error:
            pass
    for stop in (psutil.Process.terminate, psutil.Process.kill):
        for p in procs:
            try:
                stop(p)
            except psutil.Error:
                pass
        _, procs = psutil.wait_procs(procs, timeout=grace)
        if not procs:
            return


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class PilotBackend:
    """The engine's backend on a `Pilot` (its own, or one shared across runs)."""

    name = "pilot"
    capacity = None
    core_budget: int | None = None

    def __init__(self, site: Any = None, site_name: str = "local", cores: int | None = None,
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
