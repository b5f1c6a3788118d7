"""A PyTorch Lightning cluster environment on a DeepRC communicator.

neuralforecast's Trainer is ``pytorch_lightning``'s, whose ClusterEnvironment is the one
from ``lightning_fabric``; this subclasses it, so Lightning/neuralforecast DDP runs under
mpiexec, srun or a Radical Pilot raptor worker without torchrun::

    env = DeepRCEnvironment(comm)
    Trainer(accelerator="cpu", strategy="ddp", devices=comm.local_size,
            num_nodes=comm.num_nodes, plugins=[env])
"""

from __future__ import annotations

import socket

from deeprc.comm.base import Communicator
from deeprc.comm.rankenv import detect
from deeprc.comm.rendezvous import free_port, my_address, pin_gloo_interface

try:
    from lightning_fabric.plugins.environments import ClusterEnvironment
except ImportError:  # pragma: no cover - the unified `lightning` package instead
    from lightning.fabric.plugins.environments import ClusterEnvironment  # type: ignore[no-redef]


class DeepRCEnvironment(ClusterEnvironment):
    """Ranks, node index and the main address/port all come from ``comm`` (constructing it is collective)."""

    def __init__(self, comm: Communicator) -> None:
        super().__init__()
        self.comm = comm
        self._rank, self._size = comm.rank, comm.size
        hosts = comm.allgather(socket.gethostname())
        order = list(dict.fromkeys(hosts))
        self._node_rank = order.index(hosts[comm.rank])
        endpoint = (my_address(len(order) == 1), free_port()) if comm.rank == 0 else None
        self._addr, self._port = comm.bcast(endpoint, root=0)
        pin_gloo_interface(self._addr, len(order) == 1)  # Lightning's Gloo group binds to it

    def __deepcopy__(self, memo: dict) -> "DeepRCEnvironment":
        """The environment itself: it stands for the live process group, and an MPI sub-communicator
        (a raptor worker's) cannot be copied (Lightning deep-copies a model's init arguments)."""
        return self

    def __reduce__(self) -> tuple:
        """Refused with TypeError, which Lightning's `is_picklable` expects: it then leaves the strategy
        out of the saved hparams (mpi4py's own refusal is a ValueError, which Lightning lets through)."""
        raise TypeError("DeepRCEnvironment stands for a live process group and cannot be pickled")

    @property
    def creates_processes_externally(self) -> bool:
        return True

    @property
    def main_address(self) -> str:
        return self._addr

    @property
    def main_port(self) -> int:
        return int(self._port)

    @staticmethod
    def detect() -> bool:
        return detect().launcher != "single"

    def world_size(self) -> int:
        return self._size

    def set_world_size(self, size: int) -> None:
        pass  # the communicator decides

    def global_rank(self) -> int:
        return self._rank

    def set_global_rank(self, rank: int) -> None:
        pass

    def local_rank(self) -> int:
        return self.comm.local_rank

    def node_rank(self) -> int:
        return self._node_rank

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        if num_devices * num_nodes != self._size:
            from deeprc.errors import DeepRCError

            raise DeepRCError(
                f"Lightning Trainer: devices={num_devices} x num_nodes={num_nodes} does not match the "
                f"{self._size} ranks of the DeepRC communicator. Fix: pass devices=comm.local_size and "
                f"num_nodes=comm.num_nodes ({self.comm.local_size} and {self.comm.num_nodes} here)."
            )
