"""Container runtimes and the per-rank command line of a stage on a site.

`get_runtime(name).exec_command(image, argv, binds=(), gpus=False, site=None, env=None)`;
`rank_command(site, ranks, argv, ...)` = launcher + GPU visibility + runtime + argv.
"""

from __future__ import annotations

from deeprc.registry import create
from deeprc.runtimes.apptainer import Apptainer, Singularity
from deeprc.runtimes.base import Runtime
from deeprc.runtimes.charliecloud import Charliecloud
from deeprc.runtimes.oci import Docker, Podman, PodmanHPC, Shifter
from deeprc.runtimes.ranks import gpu_visibility_wrapper, rank_command, rank_env

RUNTIMES: dict[str, type[Runtime]] = {
    "apptainer": Apptainer,
    "singularity": Singularity,
    "podman-hpc": PodmanHPC,
    "podman": Podman,
    "docker": Docker,
    "shifter": Shifter,
    "charliecloud": Charliecloud,
    "none": Runtime,
}


def get_runtime(name: str) -> Runtime:
    """The runtime called `name` (apptainer, singularity, podman-hpc, podman, docker, shifter, charliecloud, none)."""
    return create(RUNTIMES, name, "container runtime")


__all__ = ["RUNTIMES", "Runtime", "get_runtime", "gpu_visibility_wrapper", "rank_command", "rank_env"]
