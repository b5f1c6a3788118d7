"""Schedulers: `get_scheduler(name)`; the built-in ones (slurm, pbs, lsf, flux, local) register on import."""

from __future__ import annotations

from deeprc.schedulers import flux, local, lsf, pbs, slurm  # noqa: F401  (they register themselves)
from deeprc.schedulers.base import SCHEDULERS, JobRequest, Scheduler, register_scheduler


def get_scheduler(name: str) -> Scheduler:
    """The scheduler called `name`."""
    return SCHEDULERS.create(name)


__all__ = ["JobRequest", "SCHEDULERS", "Scheduler", "get_scheduler", "register_scheduler"]
