"""Who started this process's ranks: launcher detection from environment variables."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class LaunchEnv:
    """Rank layout as the launcher announced it (``None`` where the launcher does not say)."""

    launcher: str  # mpiexec | srun | torchrun | raptor | single
    rank: int
    size: int | None
    local_rank: int | None = None
    local_size: int | None = None
    num_nodes: int | None = None
    flavor: str = ""  # openmpi | hydra | pmix | slurm-pmix | slurm | torchrun | ""

    @property
    def mpi_wired(self) -> bool:
        """True when an MPI library can find its peers (a PMI/PMIx server is announced)."""
        return self.flavor in ("openmpi", "hydra", "pmix", "slurm-pmix")


def _int(env: Mapping[str, str], *names: str) -> int | None:
    for name in names:
        value = env.get(name)
        if value not in (None, ""):
            try:
                return int(str(value).split("(")[0].split(",")[0])
            except ValueError:
                continue
    return None


def slurm_tasks_on_node(env: Mapping[str, str]) -> int | None:
    """Tasks on this node from SLURM_STEP_TASKS_PER_NODE / SLURM_TASKS_PER_NODE (first node's count)."""
    value = env.get("SLURM_STEP_TASKS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE")
    if not value:
        return None
    m = re.match(r"(\d+)", value)
    return int(m.group(1)) if m else None


# launchers that announce ranks in their own variables, checked in this order after Open MPI and srun:
# (marker variables, launcher, flavour, rank, size, local rank, local size, nodes)
_SCHEMES: tuple[tuple[tuple[str, ...], str, str, str, str, str | None, str | None, str | None], ...] = (
    (("PMI_RANK",), "mpiexec", "hydra", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS", None),
    (("PMIX_RANK",), "mpiexec", "pmix", "PMIX_RANK", "PMIX_SIZE", None, None, None),
    (("RANK", "WORLD_SIZE"), "torchrun", "torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE",
     "GROUP_WORLD_SIZE"),
)


def detect(env: Mapping[str, str] | None = None) -> LaunchEnv:
    """Detect the launcher: Open MPI, srun, MPICH/Hydra PMI, PMIx, torchrun, else a single process."""
    env = os.environ if env is None else env
    if "OMPI_COMM_WORLD_RANK" in env:
        return LaunchEnv("mpiexec", _int(env, "OMPI_COMM_WORLD_RANK") or 0, _int(env, "OMPI_COMM_WORLD_SIZE"),
                         _int(env, "OMPI_COMM_WORLD_LOCAL_RANK"), _int(env, "OMPI_COMM_WORLD_LOCAL_SIZE"), None, "openmpi")
    if ("SLURM_STEP_ID" in env or "SLURM_STEPID" in env) and "SLURM_PROCID" in env:  # inside an srun step
        return LaunchEnv("srun", _int(env, "SLURM_PROCID") or 0, _int(env, "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "SLURM_NPROCS"),
                         _int(env, "SLURM_LOCALID"), slurm_tasks_on_node(env), _int(env, "SLURM_STEP_NUM_NODES", "SLURM_NNODES"),
                         "slurm-pmix" if ("PMIX_RANK" in env or "PMI_FD" in env) else "slurm")
    for markers, launcher, flavour, rank, size, local_rank, local_size, nodes in _SCHEMES:
        if all(m in env for m in markers):
            def var(name: str | None) -> int | None:
                return _int(env, name) if name else None

            return LaunchEnv(launcher, var(rank) or 0, var(size), var(local_rank), var(local_size), var(nodes), flavour)
    return LaunchEnv("single", 0, 1, 0, 1, 1, "")


def in_raptor(env: Mapping[str, str] | None = None) -> bool:
    """True inside a Radical Pilot task (its agent sets RP_* variables)."""
    env = os.environ if env is None else env
    return any(k in env for k in ("RP_TASK_ID", "RP_PILOT_ID", "RP_SESSION_ID"))
