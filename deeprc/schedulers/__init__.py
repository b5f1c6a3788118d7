"""Schedulers: `get_scheduler(name)` for slurm, pbs, lsf, flux and local."""

from __future__ import annotations

from deeprc.errors import DeepRCError
from deeprc.schedulers.base import JobRequest, Scheduler
from deeprc.schedulers.flux import Flux
from deeprc.schedulers.local import Local
from deeprc.schedulers.lsf import LSF
from deeprc.schedulers.pbs import PBS
from deeprc.schedulers.slurm import Slurm

SCHEDULERS: dict[str, type[Scheduler]] = {"slurm": Slurm, "pbs": PBS, "lsf": LSF, "flux": Flux, "local": Local}


def get_scheduler(name: str) -> Scheduler:
    """The scheduler called `name`."""
    try:
        return SCHEDULERS[name]()
    except KeyError:
        raise DeepRCError(f"unknown scheduler '{name}'. Fix: use one of {', '.join(SCHEDULERS)}.") from None


__all__ = ["JobRequest", "SCHEDULERS", "Scheduler", "get_scheduler"]
