"""A minimal mpi4py communicator used only while `deeprc.comm` is not importable.

It offers the subset of the `deeprc.comm` contract that the runtime's own tests use
(rank, size, barrier, bcast, gather, allgather, allreduce on numpy arrays).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np


class MPIComm:
    """Wrap an mpi4py communicator (or act as a single rank when there is none)."""

    backend = "mpi"

    def __init__(self, comm: Any = None, launcher: str = "single") -> None:
        self._c = comm
        self.launcher = launcher
        self.rank = comm.Get_rank() if comm is not None else 0
        self.size = comm.Get_size() if comm is not None else 1
        self.local_rank, self.local_size, self.num_nodes = self.rank, self.size, 1

    def barrier(self) -> None:
        if self._c is not None:
            self._c.Barrier()

    def bcast(self, obj: Any, root: int = 0) -> Any:
        return obj if self._c is None else self._c.bcast(obj, root=root)

    def gather(self, obj: Any, root: int = 0) -> Any:
        return [obj] if self._c is None else self._c.gather(obj, root=root)

    def allgather(self, obj: Any) -> list:
        return [obj] if self._c is None else self._c.allgather(obj)

    def allreduce(self, x: Any, op: str = "sum") -> Any:
        parts = self.allgather(np.asarray(x))
        red = {"sum": np.sum, "min": np.min, "max": np.max, "mean": np.mean}[op](np.stack(parts), axis=0)
        return red.astype(np.asarray(x).dtype) if op != "mean" else red

    def close(self) -> None:
        pass


def init(backend: str = "auto", timeout: float = 120.0) -> MPIComm:
    """Use MPI.COMM_WORLD when started by a launcher, else a single rank."""
    launched = any(k in os.environ for k in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "SLURM_STEP_ID"))
    if not launched:
        return MPIComm(None)
    from mpi4py import MPI

    return MPIComm(MPI.COMM_WORLD, launcher="mpiexec")


def from_mpi(comm: Any) -> MPIComm:
    return MPIComm(comm, launcher="raptor")
