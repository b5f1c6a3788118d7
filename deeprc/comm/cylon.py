"""A pycylon ``CylonEnv`` on a DeepRC communicator's ranks (MPI or Gloo configuration)."""

from __future__ import annotations

from typing import Any

from deeprc.comm.base import Communicator
from deeprc.errors import DeepRCError


def cylon_env(comm: Communicator) -> Any:
    """CylonEnv over MPI for an mpi communicator, over Gloo (rendezvous via comm) otherwise."""
    try:
        from pycylon import CylonEnv
    except ImportError:
        raise DeepRCError(
            "deeprc.comm.cylon_env: pycylon is not importable here (it is not on PyPI; the package named "
            "`cylon` there is unrelated). Fix: build Cylon from source (github.com/cylondata/cylon, "
            "against Arrow C++ 9 / pyarrow 9) or use a DeepRC image that ships it; deeprc.data does the "
            "same dataframe work on the communicator without Cylon."
        ) from None
    if comm.backend == "mpi":
        from pycylon.net import MPIConfig

        try:
            config = MPIConfig(comm.mpi)  # newer Cylon accepts a communicator
        except TypeError:
            config = MPIConfig()
        return CylonEnv(config=config, distributed=True)
    from pycylon.net.gloo_config import GlooStandaloneConfig

    from deeprc.comm.rendezvous import free_port, my_address

    host, port = comm.bcast((my_address(comm.num_nodes == 1), free_port()) if comm.rank == 0 else None)
    config = GlooStandaloneConfig(comm.rank, comm.size)
    config.set_tcp_hostname(host)  # rank 0's address, as every rank must name the same one
    config.set_tcp_port(int(port))
    return CylonEnv(config=config, distributed=True)
