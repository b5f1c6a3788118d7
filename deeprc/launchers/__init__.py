"""Launchers: `get_launcher(name).command(ranks, argv, env=None, **opts) -> list[str]`."""

from __future__ import annotations

import difflib

from deeprc.errors import DeepRCError
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
    try:
        return LAUNCHERS[name]()
    except KeyError:
        near = difflib.get_close_matches(name, list(LAUNCHERS), n=1)
        hint = f"did you mean '{near[0]}'? " if near else ""
        raise DeepRCError(f"unknown launcher '{name}'. Fix: {hint}use one of {', '.join(LAUNCHERS)}.") from None


__all__ = ["LAUNCHERS", "Launcher", "get_launcher"]
