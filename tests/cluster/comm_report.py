"""Rank program: deeprc.comm collectives across nodes; prints `REPORT {json}` for the test to check.

usage: comm_report.py BACKEND [TIMEOUT]
"""

import json
import os
import socket
import sys

import numpy as np

import deeprc.comm as dc

comm = dc.init(sys.argv[1], timeout=float(sys.argv[2]) if len(sys.argv) > 2 else 60)
r, n = comm.rank, comm.size
report = {
    "rank": r, "size": n, "backend": comm.backend, "host": socket.gethostname(),
    "resolves": socket.gethostbyname(socket.gethostname()),
    "num_nodes": comm.num_nodes, "local_size": comm.local_size,
    "allreduce": comm.allreduce(np.arange(5, dtype=np.float64) * (r + 1)).tolist(),
    "max": comm.allreduce(r, op="max"),
    "allgather": comm.allgather(socket.gethostname()),
    "bcast": comm.bcast({"from": r} if r == 0 else None),
    "alltoallv": [b.decode() for b in comm.alltoallv([f"{r}->{j};".encode() * (j + 1) for j in range(n)])],
    "gloo_socket_ifname": os.environ.get("GLOO_SOCKET_IFNAME"),
}
comm.barrier()
print("REPORT " + json.dumps(report), flush=True)
