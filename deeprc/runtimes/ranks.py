"""The full per-rank line of a stage: launcher, GPU visibility, container runtime, program."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

from deeprc.launchers import get_launcher
from deeprc.runtimes.base import RUNTIMES

if TYPE_CHECKING:
    from deeprc.sites.schema import Site

# one POSIX-sh snippet (no config values inside) that picks this rank's GPUs from its local rank
_GPU_SNIPPET = (
    'l=${OMPI_COMM_WORLD_LOCAL_RANK:-${PALS_LOCAL_RANKID:-${PMI_LOCAL_RANK:-${MPI_LOCALRANKID:-${SLURM_LOCALID:-0}}}}}; '
    'g=$1; shift; i=0; ids=""; while [ "$i" -lt "$g" ]; do ids="${ids:+$ids,}$((l * g + i))"; i=$((i + 1)); done; '
    'export CUDA_VISIBLE_DEVICES="$ids" ROCR_VISIBLE_DEVICES="$ids"; exec "$@"'
)


def gpu_visibility_wrapper(gpus_per_rank: int) -> list[str]:
    """`sh -c SNIPPET deeprc-gpu N`: rank with local rank l sees GPUs l*N .. l*N+N-1."""
    return ["sh", "-c", _GPU_SNIPPET, "deeprc-gpu", str(int(gpus_per_rank))]


def rank_env(site: Site, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Variables every rank gets: the site's (Site.job_env), then `extra`."""
    return {**site.job_env(), **(extra or {})}


def rank_command(
    site: Site,
    ranks: int,
    argv: Sequence[str],
    *,
    nodes: int | None = None,
    ranks_per_node: int | None = None,
    cores_per_rank: int = 1,
    gpus_per_rank: float = 0,
    binds: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> list[str]:
    """argv starting `ranks` ranks of `argv` on `site`, inside the site's image when it has one.

    e.g. `srun --ntasks=8 --gpus-per-task=1 --gpu-bind=closest --mpi=pmix env NCCL_SOCKET_IFNAME=hsn
    apptainer exec --nv --bind /scratch IMAGE python -m deeprc.pipeline.entry ...`.
    """
    gpus = int(gpus_per_rank) if gpus_per_rank >= 1 else (1 if gpus_per_rank > 0 else 0)
    full_env = rank_env(site, env)
    inner = [str(a) for a in argv]
    c = site.container
    if c.runtime != "none":
        inner = RUNTIMES.create(c.runtime).exec_command(c.image, inner, binds=binds, gpus=gpus > 0, site=site, env=full_env)
    if gpus and site.gpu_binding == "local-rank":
        inner = gpu_visibility_wrapper(gpus) + inner
    opts: dict[str, Any] = {
        "nodes": nodes,
        "ranks_per_node": ranks_per_node,
        "cpus_per_rank": cores_per_rank if cores_per_rank > 1 else None,
        "gpus_per_rank": gpus if site.gpu_binding == "launcher" else None,
        "gpu_bind": site.gpu_binding == "launcher",
        "pmi": site.mpi.pmi,
        "flavour": site.mpi.flavour,
        "extra": site.launcher_args,
    }
    return get_launcher(site.launcher).command(ranks, inner, env=full_env, **opts)
