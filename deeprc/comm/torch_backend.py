"""The ``gloo`` and ``nccl`` backends: torch.distributed process groups of our own.

Each communicator owns a process group built on a rendezvous TCPStore (independent of
torch's default group; :func:`deeprc.comm.init_torch_process_group` makes that one).
NCCL carries tensors; a Gloo group beside it carries pickled objects.
"""

from __future__ import annotations

import atexit
import pickle
import socket
import sys
from collections import Counter
from datetime import timedelta
from typing import Any, Sequence
import weakref

import numpy as np
import torch
import torch.distributed as dist

from deeprc.comm.base import Communicator, check_op, check_out, is_torch_tensor
from deeprc.comm.rankenv import LaunchEnv, in_raptor
from deeprc.comm.rendezvous import is_loopback, agree_endpoint, make_store, next_generation, pin_gloo_interface
from deeprc.comm.timeouts import dead_rank_message
from deeprc.errors import DeepRCError

_LIVE: "weakref.WeakSet[TorchCommunicator]" = weakref.WeakSet()


@atexit.register
def _close_live() -> None:
    """Close groups a program left open: a Gloo group destroyed while the interpreter finalises
    aborts the process ("terminate called without an active exception"), seen with ranks on two nodes."""
    for comm in list(_LIVE):
        comm.close()


_OPS = {"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX, "mean": dist.ReduceOp.SUM}


def _gloo_pg(store: Any, rank: int, size: int, timeout: float) -> Any:
    import os

    opts = dist.ProcessGroupGloo._Options()
    opts._timeout = timedelta(seconds=timeout)
    ifname = os.environ.get("GLOO_SOCKET_IFNAME")
    if ifname:
        opts._devices = [dist.ProcessGroupGloo.create_device(interface=i) for i in ifname.split(",")]
    else:
        opts._devices = [dist.ProcessGroupGloo.create_default_device()]
    return dist.ProcessGroupGloo(store, rank, size, opts)


def _nccl_pg(store: Any, rank: int, size: int, timeout: float) -> Any:
    opts = dist.ProcessGroupNCCL.Options()
    opts._timeout = timedelta(seconds=timeout)
    return dist.ProcessGroupNCCL(store, rank, size, opts)


class TorchCommunicator(Communicator):
    """A communicator over a torch.distributed Gloo or NCCL process group."""

    def __init__(
        self, backend: str, store: Any, rank: int, size: int, *, launcher: str, timeout: float,
        prefix: str = "deeprc/world",
    ) -> None:
        self.backend, self.launcher, self.timeout = backend, launcher, float(timeout)
        self.rank, self.size = rank, size
        self._store, self._prefix, self._nsplit = store, prefix, 0
        self.obj_pg = self._guard(
            lambda: _gloo_pg(dist.PrefixStore(prefix + "/gloo", store), rank, size, timeout), "group setup"
        )
        self.pg = self.obj_pg
        _LIVE.add(self)
        hosts = self.allgather(socket.gethostname())
        mine = hosts[rank]
        self.local_rank = sum(1 for h in hosts[:rank] if h == mine)
        self.local_size = Counter(hosts)[mine]
        self.num_nodes = len(set(hosts))
        self.device = torch.device("cpu")
        if backend == "nccl":
            if not torch.cuda.is_available():
                raise DeepRCError(
                    f"deeprc.comm: backend 'nccl' on rank {rank} but torch sees no CUDA GPU here. "
                    f"Fix: use backend='gloo' (CPU) or 'auto', or run on GPU nodes with a CUDA build of torch."
                )
            self.device = torch.device("cuda", self.local_rank % torch.cuda.device_count())
            torch.cuda.set_device(self.device)
            self.pg = self._guard(
                lambda: _nccl_pg(dist.PrefixStore(prefix + "/nccl", store), rank, size, timeout), "group setup"
            )

    # -- plumbing ---------------------------------------------------------------------------
    def _guard(self, fn: Any, op: str) -> Any:
        try:
            return fn()
        except DeepRCError:
            raise
        except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError/DistBackendError
            self._fail(op, exc)

    def _fail(self, op: str, exc: BaseException) -> None:
        text = str(exc).strip()
        detail = text.splitlines()[0][:300] if text else type(exc).__name__
        msg = dead_rank_message(self.rank, self.size, op, self.timeout, self.backend, detail)
        print(f"error: {msg}", file=sys.stderr, flush=True)
        raise DeepRCError(msg, exit_code=1) from None

    def _run(self, work_fn: Any, op: str) -> None:
        try:
            work_fn().wait()
        except Exception as exc:  # noqa: BLE001
            self._fail(op, exc)

    # -- collectives ------------------------------------------------------------------------
    def barrier(self) -> None:
        t = torch.zeros(1)
        self._run(lambda: self.obj_pg.allreduce([t]), "barrier")

    def allreduce(self, x: Any, op: str = "sum", out: Any = None) -> Any:
        rop = _OPS.get(op) or _OPS[check_op(op)]
        if out is not None:
            check_out(x, out, op)
            t = torch.from_numpy(out) if type(out) is np.ndarray else out
            if out is not x:
                t.copy_(torch.from_numpy(x) if type(x) is np.ndarray else x)
            if self.backend == "nccl" and t.device.type != "cuda":
                res = self.allreduce(x, op)
                t.copy_(torch.from_numpy(res) if type(res) is np.ndarray else res)
                return out
            self._run(lambda: self.pg.allreduce([t], rop), f"allreduce({op})")
            if op == "mean":
                t.div_(self.size)
            return out
        if type(x) is np.ndarray:
            t = torch.from_numpy(np.array(x, copy=True, order="C"))
            kind = "numpy"
        elif is_torch_tensor(x):
            t = x.detach().clone(memory_format=torch.contiguous_format)
            kind = "torch"
        elif isinstance(x, (bool, int, float, np.generic)):
            t = torch.from_numpy(np.asarray(x).reshape(1).copy())
            kind = "scalar"
        else:
            raise DeepRCError(
                f"deeprc.comm allreduce: cannot reduce a {type(x).__name__}. Fix: pass a numpy array, "
                f"a torch tensor or a number (use allgather for other Python objects)."
            )
        if self.backend == "nccl":
            t = t.to(self.device)
        self._run(lambda: self.pg.allreduce([t], rop), f"allreduce({op})")
        if op == "mean":
            t = t / self.size if not t.is_floating_point() else t.div_(self.size)
        if kind == "torch":
            return t.to(x.device) if t.device != x.device else t
        out = t.cpu().numpy()
        if kind == "scalar":
            return out[0] if isinstance(x, np.generic) else out[0].item()
        return out

    def _bytes_tensor(self, data: bytes) -> torch.Tensor:
        return torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)

    def bcast(self, obj: Any, root: int = 0) -> Any:
        self._check_root(root)
        if self.size == 1:
            return obj
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL) if self.rank == root else b""
        n = torch.tensor([len(data)], dtype=torch.int64)
        self._run(lambda: self.obj_pg.broadcast([n], _bopts(root)), "bcast")
        buf = self._bytes_tensor(data) if self.rank == root else torch.empty(int(n[0]), dtype=torch.uint8)
        self._run(lambda: self.obj_pg.broadcast([buf], _bopts(root)), "bcast")
        return obj if self.rank == root else pickle.loads(buf.numpy().tobytes())

    def allgather(self, obj: Any) -> list[Any]:
        if self.size == 1:
            return [obj]
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        n = torch.tensor([len(data)], dtype=torch.int64)
        ns = [torch.empty(1, dtype=torch.int64) for _ in range(self.size)]
        self._run(lambda: self.obj_pg.allgather([ns], [n]), "allgather")
        lengths = [int(v[0]) for v in ns]
        width = max(lengths)
        mine = torch.zeros(width, dtype=torch.uint8)
        mine[: len(data)] = self._bytes_tensor(data)
        outs = [torch.empty(width, dtype=torch.uint8) for _ in range(self.size)]
        self._run(lambda: self.obj_pg.allgather([outs], [mine]), "allgather")
        return [pickle.loads(o.numpy().tobytes()[:ln]) for o, ln in zip(outs, lengths)]

    def gather(self, obj: Any, root: int = 0) -> list[Any] | None:
        self._check_root(root)
        everything = self.allgather(obj)
        return everything if self.rank == root else None

    def alltoallv(self, buffers: Sequence[bytes]) -> list[bytes]:
        self._check_alltoallv(buffers)
        scounts = torch.tensor([len(b) for b in buffers], dtype=torch.int64)
        rcounts = torch.empty(self.size, dtype=torch.int64)
        self._run(lambda: self.obj_pg.alltoall_base(rcounts, scounts, [], [], dist.AllToAllOptions()), "alltoallv")
        send = self._bytes_tensor(b"".join(buffers))
        rc = rcounts.tolist()
        out = torch.empty(sum(rc), dtype=torch.uint8)
        self._run(
            lambda: self.obj_pg.alltoall_base(out, send, rc, scounts.tolist(), dist.AllToAllOptions()), "alltoallv"
        )
        raw = out.numpy().tobytes()
        offsets = np.concatenate([[0], np.cumsum(rc)]).tolist()
        return [raw[offsets[i] : offsets[i + 1]] for i in range(self.size)]

    def split(self, color: int | None, key: int = 0) -> "TorchCommunicator | None":
        pairs = self.allgather((color, key))
        self._nsplit += 1
        if color is None:
            return None
        members = sorted((k, r) for r, (c, k) in enumerate(pairs) if c == color)
        ranks = [r for _, r in members]
        return TorchCommunicator(
            self.backend, self._store, ranks.index(self.rank), len(ranks), launcher=self.launcher,
            timeout=self.timeout, prefix=f"{self._prefix}/split{self._nsplit}/{color}",
        )

    def with_nccl(self) -> "TorchCommunicator":
        """An NCCL communicator over the same ranks and rendezvous (collective)."""
        return TorchCommunicator(
            "nccl", self._store, self.rank, self.size, launcher=self.launcher, timeout=self.timeout,
            prefix=self._prefix + "/nccl-upgrade",
        )

    @property
    def store(self) -> Any:
        """The rendezvous TCPStore (used to build torch's default process group)."""
        return self._store

    def close(self) -> None:
        if self.backend == "nccl" and self.pg is not None:
            try:
                self.pg.shutdown()
            except Exception:  # noqa: BLE001
                pass
        self.pg = self.obj_pg = None


def _bopts(root: int) -> Any:
    o = dist.BroadcastOptions()
    o.rootRank = root
    o.rootTensor = 0
    return o


def init_torch_comm(backend: str, env: LaunchEnv, timeout: float, via: Communicator | None = None) -> TorchCommunicator:
    """Bootstrap a Gloo/NCCL communicator from the launcher (MPI, Slurm, torchrun or env)."""
    from deeprc.comm import _init_mpi, mpi_usable

    if via is None and (env.size or 1) > 1 and mpi_usable(env):
        via = _init_mpi(env, timeout)
    rank = via.rank if via is not None else env.rank
    size = via.size if via is not None else (env.size or 1)
    generation = next_generation()
    host, port, how = agree_endpoint(env, via, generation)
    nodes = via.num_nodes if via is not None else env.num_nodes
    pin_gloo_interface(host, nodes == 1 if nodes is not None else is_loopback(host) or host == "localhost")
    store = make_store(host, port, rank, size, timeout, how)
    launcher = "raptor" if in_raptor() else (via.launcher if via is not None else env.launcher)
    return TorchCommunicator(
        backend, store, rank, size, launcher=launcher, timeout=timeout, prefix=f"deeprc/world{generation}"
    )
