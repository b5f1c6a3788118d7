"""Launchers: `get_launcher(name).command(ranks, argv, env=None, **opts) -> list[str]`."""

from __future__ import annotations

from deeprc.registry import create
from deeprc.launchers.base import Launcher
from deeprc.launchers.mpiexec import Mpiexec, Mpirun
from deeprc.launchers.others import Aprun, FluxRun, Ibrun, Jsrun
from deeprc.launchers.srun import Srun

LAUNCHERS: dict[str, type[Launcher]] = {
    "srun": Srun,
    "mpiexec": Mpiexec,
    "mpirun": Mpirun,
    "jsrun": Jsrun,
    "aprun": Aprun,
    "flux": FluxRun,
    "ibrun": Ibrun,
    "local": Launcher,
}


def get_launcher(name: str) -> Launcher:
    """The launcher called `name` (srun, mpiexec, mpirun, jsrun, aprun, flux, ibrun, local)."""
    return create(LAUNCHERS, name, "launcher")


__all__ = ["LAUNCHERS", "Launcher", "get_launcher"]
