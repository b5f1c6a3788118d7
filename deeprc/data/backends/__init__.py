"""Which engine runs the distributed operators: DeepRC's own (`native`) or pycylon (`cylon`)."""

from __future__ import annotations

import functools
from typing import Any

from deeprc.errors import DeepRCError

BACKENDS = ("auto", "native", "cylon")


class NativeBackend:
    """DeepRC's engine: Arrow/Acero kernels per rank, rows exchanged through the communicator."""

    name = "native"


@functools.lru_cache(maxsize=1)
def cylon_available() -> bool:
    """True when pycylon imports here."""
    try:
        import pycylon  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: Any, comm: Any) -> Any:
    """A backend object from a name: `auto` takes cylon when pycylon imports, native otherwise."""
    if not isinstance(backend, str):
        return backend
    if backend not in BACKENDS:
        raise DeepRCError(f"dataframe backend '{backend}' is unknown. Fix: use one of {', '.join(BACKENDS)}.")
    if backend == "native" or (backend == "auto" and not cylon_available()):
        return NativeBackend()
    from deeprc.data.backends.cylon import CylonBackend

    return CylonBackend(comm)
