"""The Communicator interface every backend implements, and shared argument checks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

from deeprc.errors import DeepRCError

OPS = ("sum", "min", "max", "mean")


def check_op(op: str) -> str:
    """Validate a reduction name."""
    if op not in OPS:
        raise DeepRCError(
            f"deeprc.comm allreduce: unknown op {op!r}. Fix: use one of {', '.join(OPS)}."
        )
    return op


def check_out(x: Any, out: Any, op: str) -> None:
    """``out`` must match x in type, shape and dtype (and be floating point for a mean)."""
    same = type(out) is type(x) and tuple(out.shape) == tuple(x.shape) and out.dtype == x.dtype
    if is_torch_tensor(x):
        same = same and out.device == x.device and out.is_contiguous()
        floating = out.is_floating_point()
    else:
        same = same and getattr(out, "flags", None) is not None and out.flags.c_contiguous
        floating = getattr(out, "dtype", None) is not None and out.dtype.kind in "fc"
    if not same:
        raise DeepRCError(
            f"deeprc.comm allreduce: out= must be a contiguous {type(x).__name__} with x's shape and dtype "
            f"(and device). Fix: pass out=x to reduce in place, or leave out unset to get a new result."
        )
    if op == "mean" and not floating:
        raise DeepRCError(
            "deeprc.comm allreduce: op='mean' into an integer out= cannot hold the result. Fix: leave out "
            "unset (an integer mean comes back as floating point) or reduce a floating-point array."
        )


def _byte_view(buffer: Any) -> memoryview:
    """A flat, read-only unsigned-byte view of any C-contiguous buffer-protocol object."""
    view = memoryview(buffer)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def is_torch_tensor(x: Any) -> bool:
    """True for a torch.Tensor without importing torch when it is not loaded."""
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


class Communicator(ABC):
    """Ranks that talk through one backend (``mpi``, ``gloo`` or ``nccl``).

    Attributes: ``rank``, ``size``, ``local_rank``, ``local_size``, ``num_nodes``,
    ``backend``, ``launcher`` (mpiexec, srun, torchrun, raptor, single) and ``timeout``
    (seconds a collective waits for its peers before raising :class:`DeepRCError`).
    """

    rank: int
    size: int
    local_rank: int
    local_size: int
    num_nodes: int
    backend: str
    launcher: str
    timeout: float

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} backend={self.backend} launcher={self.launcher} "
            f"rank={self.rank}/{self.size} local={self.local_rank}/{self.local_size} nodes={self.num_nodes}>"
        )

    @abstractmethod
    def barrier(self) -> None:
        """Wait until every rank gets here."""

    @abstractmethod
    def bcast(self, obj: Any, root: int = 0) -> Any:
        """Root's picklable object on every rank."""

    @abstractmethod
    def gather(self, obj: Any, root: int = 0) -> list[Any] | None:
        """Every rank's object as a list on root (None elsewhere)."""

    @abstractmethod
    def allgather(self, obj: Any) -> list[Any]:
        """Every rank's object as a list, on every rank."""

    @abstractmethod
    def allreduce(self, x: Any, op: str = "sum", out: Any = None) -> Any:
        """Element-wise reduction of a numpy array, torch tensor or number; same type back.

        ``mean`` of an integer array comes back as floating point. ``out``: an array/tensor
        of x's type, shape and dtype to reduce into and return (``out=x`` reduces in place,
        with no copy or allocation: the hot path for big buffers).
        """

    @abstractmethod
    def alltoallv(self, buffers: Sequence[bytes]) -> list[bytes]:
        """Send ``buffers[d]`` to rank d; return the bytes received from each source rank."""

    def alltoallv_buffers(self, buffers: Sequence[Any], chunk_bytes: int = 1 << 30) -> list[memoryview]:
        """Send ``buffers[d]`` to rank d without staging copies; return a memoryview per source rank.

        ``buffers`` are any buffer-protocol objects (bytes, numpy arrays, ``pa.Buffer``...). The
        view for this rank is ``buffers[rank]`` itself, never sent or copied. Messages larger than
        ``chunk_bytes`` travel in pieces of at most that size. This generic version runs on
        :meth:`alltoallv` (in rounds of ``chunk_bytes`` per destination); backends override it with
        point-to-point transfers straight into the receive buffers.
        """
        self._check_alltoallv(buffers)
        chunk = max(1, int(chunk_bytes))
        views = [_byte_view(b) for b in buffers]
        me = self.rank
        longest = max((len(v) for d, v in enumerate(views) if d != me), default=0)
        import numpy as np

        rounds = int(np.asarray(self.allreduce(np.array([-(-longest // chunk)], dtype=np.int64), op="max"))[0])
        received: list[list[bytes]] = [[] for _ in views]
        for i in range(rounds):
            parts = self.alltoallv([b"" if d == me else bytes(v[i * chunk : (i + 1) * chunk])
                                    for d, v in enumerate(views)])
            for src, part in enumerate(parts):
                if len(part) and src != me:
                    received[src].append(part)
        out = [memoryview(b"".join(parts) if len(parts) != 1 else parts[0]) for parts in received]
        out[me] = views[me]
        return out

    @abstractmethod
    def split(self, color: int | None, key: int = 0) -> "Communicator | None":
        """Sub-communicator of the ranks with the same color, ordered by (key, rank).

        A rank passing ``color=None`` takes part in the call and gets ``None`` back.
        """

    @abstractmethod
    def close(self) -> None:
        """Release what this communicator owns (the world MPI communicator is left alone)."""

    def __enter__(self) -> "Communicator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_alltoallv(self, buffers: Sequence[bytes]) -> None:
        if len(buffers) != self.size:
            raise DeepRCError(
                f"deeprc.comm alltoallv on rank {self.rank}: got {len(buffers)} buffers for "
                f"{self.size} ranks. Fix: pass exactly one bytes object per destination rank "
                f"(an empty b'' for ranks that get nothing)."
            )

    def _check_root(self, root: int) -> None:
        if not 0 <= root < self.size:
            raise DeepRCError(
                f"deeprc.comm: root {root} is not a rank of this communicator (size {self.size}). "
                f"Fix: pass a root between 0 and {self.size - 1}."
            )
