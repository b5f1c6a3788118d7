"""Container runtimes and the per-rank command line of a stage on a site.

`get_runtime(name).exec_command(image, argv, binds=(), gpus=False, site=None, env=None)`;
`rank_command(site, ranks, argv, ...)` = launcher + GPU visibility + runtime + argv.
"""

from __future__ import annotations

from deeprc.runtimes import apptainer, charliecloud, oci  # noqa: F401  (they register themselves)
from deeprc.runtimes.base import RUNTIMES, Runtime, register_runtime
from deeprc.runtimes.ranks import gpu_visibility_wrapper, rank_command, rank_env


def get_runtime(name: str) -> Runtime:
    """The runtime called `name` (apptainer, singularity, podman-hpc, podman, docker, shifter, charliecloud, none)."""
    return RUNTIMES.create(name)


__all__ = ["RUNTIMES", "Runtime", "get_runtime", "register_runtime", "gpu_visibility_wrapper", "rank_command", "rank_env"]
