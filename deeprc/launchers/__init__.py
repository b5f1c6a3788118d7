"""Launchers: `get_launcher(name).command(ranks, argv, env=None, **opts) -> list[str]`; the built-in ones
(srun, mpiexec, mpirun, jsrun, aprun, flux, ibrun, local) register on import."""

from __future__ import annotations

from deeprc.launchers import aprun, fluxrun, ibrun, jsrun, mpiexec, srun  # noqa: F401  (they register themselves)
from deeprc.launchers.base import LAUNCHERS, Launcher, register_launcher


def get_launcher(name: str) -> Launcher:
    """The launcher called `name`."""
    return LAUNCHERS.create(name)


__all__ = ["LAUNCHERS", "Launcher", "get_launcher", "register_launcher"]
