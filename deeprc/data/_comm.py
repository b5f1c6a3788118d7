"""Resolving the communicator a distributed table runs on, and collective error checks."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import numpy as np

from deeprc.errors import DeepRCError

T = TypeVar("T")


class SingleComm:
    """A one-rank communicator with the `deeprc.comm` API (single-process use and tests)."""

    rank = 0
    size = 1
    local_rank = 0
    local_size = 1
    num_nodes = 1
    backend = "single"
    launcher = "single"

    def barrier(self) -> None:
        """Nothing to wait for on one rank."""

    def bcast(self, obj: Any, root: int = 0) -> Any:
        return obj

    def gather(self, obj: Any, root: int = 0) -> list[Any]:
        return [obj]

    def allgather(self, obj: Any) -> list[Any]:
        return [obj]

    def allreduce(self, x: Any, op: str = "sum") -> Any:
        return x

    def alltoallv(self, buffers: list[bytes]) -> list[bytes]:
        if len(buffers) != 1:
            raise ValueError("alltoallv on one rank takes exactly one buffer")
        return list(buffers)

    def split(self, color: int, key: int = 0) -> "SingleComm":
        return self

    def close(self) -> None:
        """Nothing to release."""


_DEFAULT: list[Any] = []


def resolve_comm(comm: Any | None) -> Any:
    """`comm` itself, or this process's default `deeprc.comm.init()` when None (made once)."""
    if comm is not None:
        return comm
    if not _DEFAULT:
        from deeprc.comm import init

        _DEFAULT.append(init())
    return _DEFAULT[0]


def collective(comm: Any, fn: Callable[[], T]) -> T:
    """Run `fn` on every rank; if it fails on any rank, raise the same error on all ranks.

    Without this, one rank raising while the others enter the next collective would hang the job.
    """
    result: Any = None
    message = ""
    error: BaseException | None = None
    try:
        result = fn()
    except DeepRCError as exc:
        error, message = exc, str(exc)
    except Exception as exc:  # noqa: BLE001 - reported on every rank below
        error = exc
        message = f"rank {comm.rank}: {type(exc).__name__}: {exc}"
    if comm.size > 1:
        messages = comm.allgather(message)
        first = next((m for m in messages if m), "")
        if first and error is None:
            raise DeepRCError(first)
    if error is not None:
        if isinstance(error, DeepRCError):
            raise error
        raise DeepRCError(message) from error
    return result


def allreduce_int(comm: Any, value: int, op: str = "sum") -> int:
    """All-reduce one integer through the communicator's numpy allreduce."""
    if comm.size == 1:
        return int(value)
    out = comm.allreduce(np.array([value], dtype=np.int64), op=op)
    return int(np.asarray(out)[0])


