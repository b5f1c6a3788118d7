"""One Radical Pilot session, pilot and warm raptor MPI worker: start, probe, listen, close.

Shareable across runs (deeprc.pipeline.warm keeps one up); the DAG engine's backend on it is
deeprc.pipeline.pilot.PilotBackend.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deeprc.errors import DeepRCError
from deeprc.pipeline import taskenv
from deeprc.pipeline.commands import is_local, oversubscribe_env, root_mpi_env
from deeprc.pipeline.pilot_layout import Layout, agent_interface, inside_allocation, sandbox_errors, stall_message
from deeprc.pipeline.pilot_tasks import PilotTasks
from deeprc.rp.config import lean_agent_config, prepare_env, rp_resource
from deeprc.rp.hooks import write_hooks
from deeprc.rp.patches import install as install_patches
from deeprc.rp.patches import patches
from deeprc.rp.reaping import stop_leftovers
from deeprc.settings import check_rp_patches as check_patch_env

if TYPE_CHECKING:
    from deeprc.sites import Site

KILL_WAIT_S = 3.0  # how long closing waits for the launcher to report the pilot job ended
LOCAL_CORES = 8  # local.localhost offers 8 (oversubscribed) cores per node


def warn_line(msg: str) -> None:
    """The client's one warning line on stderr."""
    print(f"warning: {msg}", file=sys.stderr, flush=True)


class Pilot:
    """A started RP session + pilot (+ one raptor master and MPI worker); shareable across runs."""

    def __init__(self, site: Site | None = None, site_name: str = "local", cores: int | None = None,
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
        label, cfg = rp_resource(self.site) if self.site is not None else ("local.localhost", None)
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
            (cfg_dir / "agent_deeprc.json").write_text(json.dumps(lean_agent_config(), indent=2))
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
        """The hooks folder (:mod:`deeprc.rp.hooks`: a `sitecustomize.py` that installs :mod:`deeprc.rp.patches`,
        which trim RP's idle polling, start-up and close); None when `DEEPRC_RP_PATCHES=off`."""
        if not patches():
            return None
        hooks = self.base / "rp_hooks"
        hooks.mkdir(parents=True, exist_ok=True)
        return write_hooks(hooks)

    def _agent_hooks(self) -> list[str]:
        """Shell lines that put the hooks folder first on the agent's PYTHONPATH."""
        hooks = self._hooks_dir()
        # RP passes these lines through its own `$` handling: `${VAR:+...}` does not survive it
        return [f'export PYTHONPATH={shlex.quote(str(hooks))}:"$PYTHONPATH"'] if hooks else []

    def start(self) -> "Pilot":
        self.local = is_local(self.site)
        prepare_env(self.local)
        check_patch_env()
        # RP starts its agent through a login shell; only sites that load modules need one (deeprc.rp.patches.startup)
        site = self.site
        modules = site is not None and bool(site.module_reset or site.module_use or site.modules)
        os.environ["DEEPRC_RP_LOGIN_SHELL"] = "1" if modules else "0"
        install_patches(warn=warn_line)  # the client's bridges and components
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
