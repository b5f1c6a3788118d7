"""Run by mpiexec on the test VMs: MPI allreduce, then Gloo (torch.distributed) bootstrapped over MPI."""
import json, os, socket
import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
host = socket.gethostname()
mpi_sum = comm.allreduce(np.full(4, rank + 1.0), op=MPI.SUM)
hosts = comm.allgather(host)
import torch, torch.distributed as dist
ifname = os.environ.get("GLOO_SOCKET_IFNAME", "")
addr = None
if rank == 0:
    import fcntl, struct
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    addr = socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", ifname.encode()[:15]))[20:24])
    probe = socket.socket(); probe.bind((addr, 0)); port = probe.getsockname()[1]; probe.close()
    addr = f"{addr}:{port}"
addr = comm.bcast(addr, root=0)
dist.init_process_group("gloo", init_method=f"tcp://{addr}", rank=rank, world_size=size)
t = torch.full((1000,), float(rank + 1))
dist.all_reduce(t)
out = {"rank": rank, "size": size, "host": host, "hosts": hosts, "mpi_sum": mpi_sum.tolist(),
       "gloo_sum": float(t[0]), "gloo_addr": addr, "ifname": ifname}
dist.destroy_process_group()
print("RESULT " + json.dumps(out), flush=True)
