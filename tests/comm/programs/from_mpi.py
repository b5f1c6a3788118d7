"""Rank program: wrap a sub-communicator like the one Radical Pilot's raptor injects into a task."""

import numpy as np
from mpi4py import MPI

import deeprc.comm as dc

world = MPI.COMM_WORLD
task_comm = world.Split(0, world.rank)  # raptor hands each function task such a communicator
comm = dc.from_mpi(task_comm, timeout=30)
total = comm.allreduce(np.array([comm.rank + 1.0]))
assert comm.launcher == "raptor", comm.launcher
assert (comm.rank, comm.size, comm.local_size, comm.num_nodes) == (world.rank, world.size, world.size, 1)
assert total[0] == comm.size * (comm.size + 1) / 2, total
print(f"from_mpi ok rank {comm.rank} {comm!r}", flush=True)
