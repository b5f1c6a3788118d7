"""torch's default process group over a DeepRC communicator's ranks (so DDP works)."""

from __future__ import annotations

from datetime import timedelta

from deeprc.comm.base import Communicator
from deeprc.comm.rendezvous import free_port, make_store, my_address, pin_gloo_interface
from deeprc.errors import DeepRCError


def init_torch_process_group(comm: Communicator, backend: str = "gloo") -> None:
    """Initialise ``torch.distributed``'s default group with comm's ranks (collective).

    Gloo/NCCL communicators reuse their rendezvous store; MPI ones agree on rank 0's
    address and a free port through an MPI broadcast. A group that already spans the same
    ranks is left as it is.
    """
    import torch
    import torch.distributed as dist

    if backend not in ("gloo", "nccl"):
        raise DeepRCError(
            f"deeprc.comm.init_torch_process_group: backend {backend!r} is not a torch backend. "
            "Fix: use 'gloo' (CPU tensors) or 'nccl' (GPU tensors)."
        )
    if dist.is_initialized():
        if dist.get_world_size() == comm.size and dist.get_rank() == comm.rank:
            return
        raise DeepRCError(
            f"deeprc.comm.init_torch_process_group: torch's default group already exists with rank "
            f"{dist.get_rank()} of {dist.get_world_size()}, not rank {comm.rank} of {comm.size}. Fix: call "
            "torch.distributed.destroy_process_group() first, or build DDP on that group."
        )
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise DeepRCError(
                f"deeprc.comm.init_torch_process_group: backend 'nccl' on rank {comm.rank} but torch sees "
                "no CUDA GPU. Fix: use backend 'gloo' on CPU nodes."
            )
        torch.cuda.set_device(comm.local_rank % torch.cuda.device_count())
    base = getattr(comm, "store", None)
    if base is None:
        endpoint = (my_address(comm.num_nodes == 1), free_port()) if comm.rank == 0 else None
        host, port = comm.bcast(endpoint, root=0)
        pin_gloo_interface(host, comm.num_nodes == 1)
        base = make_store(host, int(port), comm.rank, comm.size, comm.timeout, f"{comm.backend} bcast")
    generation = comm.bcast(free_port() if comm.rank == 0 else None)  # a fresh key space per call
    store = dist.PrefixStore(f"deeprc/torch-default/{generation}", base)
    try:
        dist.init_process_group(
            backend, store=store, rank=comm.rank, world_size=comm.size, timeout=timedelta(seconds=comm.timeout)
        )
    except Exception as exc:  # noqa: BLE001
        raise DeepRCError(
            f"deeprc.comm.init_torch_process_group: rank {comm.rank} of {comm.size} could not build the "
            f"torch {backend} group: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__}. "
            "Fix: check that every rank calls it, and the other ranks' logs."
        , exit_code=1) from None
