"""`deeprc-deploy run` and `deeprc-deploy report`."""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from deeprc.errors import DeepRCError

if TYPE_CHECKING:
    from deeprc.pipeline.engine import Backend
    from deeprc.pipeline.spec import Pipeline
    from deeprc.sites import Site


def load_site_or_default(name: str) -> Site | None:
    """`deeprc.sites.load_site(name)`; for `local`, None (built-in defaults) when sites are unavailable."""
    from deeprc.sites import find_site_file, load_site

    if name == "local":
        try:
            find_site_file(name)
        except DeepRCError:  # no local.yaml anywhere: built-in defaults; a broken one is an error below
            return None
    return load_site(name)


def check_stages(pipe: Pipeline, names: list[str], site: Site | None) -> None:
    """Before anything runs: every selected stage's function can be found, and a local run's stages fit
    on this machine (ranks x cores at most 16 per usable core, so a typo cannot start a million processes)."""
    from deeprc.errors import config_error
    from deeprc.pipeline.commands import check_image
    from deeprc.pipeline.pilot import usable_cores
    from deeprc.stage import check_function

    local = site is None or getattr(site, "scheduler", "local") == "local"
    limit = max(64, 16 * usable_cores())
    imaged = check_image(site)
    for i, s in enumerate(pipe.stages):
        if s.name not in names:
            continue
        if s.function and not imaged and (why := check_function(s.function)):  # in an image: the image's Python
            raise config_error(pipe.source, f"stages[{i}] ({s.name}).function", why,
                               "correct the 'package.module:function' name, or put the module's folder on PYTHONPATH")
        if local and s.ranks * s.cores_per_rank > limit:
            raise config_error(pipe.source, f"stages[{i}] ({s.name}).ranks",
                               f"{s.ranks} ranks x {s.cores_per_rank} cores is more than this machine can run "
                               f"({usable_cores()} cores; at most {limit} oversubscribed)",
                               "lower ranks, or run it on a cluster site with `deeprc-deploy launch`")


def default_run_dir(pipe: Pipeline, site: Site | None) -> Path:
    base = getattr(getattr(site, "filesystems", None), "runs", None) or "runs"
    suffix = "" if pipe.profile == "full" else f"-{pipe.profile}"
    return Path(os.path.expandvars(base)) / f"{pipe.name}{suffix}"


def run_pipeline(pipeline: str | Path, *, site_name: str = "local", runner: str = "pilot", profile: str = "full",
                 run_dir: str | Path | None = None, stages: list[str] | None = None, resume: bool = True,
                 cores: int | None = None, quiet: bool = False, report: bool = True,
                 pilot: Any = None, backend: Backend | None = None,
                 rank_lines: dict[str, list[str]] | None = None) -> tuple[Any, Path]:
    """Run a pipeline file and return (RunResult, run folder). Used by the CLI, tests and benchmarks.

    `pilot`: a started `Pilot` to share; `backend`: a ready pilot backend (a warm pilot daemon's, whose
    `pilot_name` the recorded command names). The run records the `deeprc-deploy run ...` command line
    that repeats (resumes) it.
    """
    from rich.console import Console

    from deeprc.pipeline.engine import Engine
    from deeprc.pipeline.progress import Progress, stage_table
    from deeprc.pipeline.runfolder import RunFolder, provenance
    from deeprc.pipeline.spec import load_pipeline

    pipe = load_pipeline(pipeline, profile)
    site = load_site_or_default(site_name)
    run = RunFolder(run_dir or default_run_dir(pipe, site))
    for s in stages or []:
        pipe.stage(s)
    check_stages(pipe, list(stages or pipe.names), site)
    run.create(pipe, keep_others=bool(stages))
    command = ["deeprc-deploy", "run", str(pipeline), "--site", site_name, "--runner", runner, "--profile", profile,
               "--run-dir", str(run.path), *[a for s in stages or [] for a in ("--stage", s)],
               *(["--cores", str(cores)] if cores else []), *([] if resume else ["--no-resume"])]
    if getattr(backend, "pilot_name", None):
        command += ["--pilot", backend.pilot_name]
    run.set_run("starting", **provenance(shlex.join(command), site_name))
    if not os.environ.get("USER"):  # container runtimes (ch-run) refuse to start without it
        import getpass

        os.environ["USER"] = getpass.getuser()
    if backend is not None:
        pass
    elif runner == "batch":
        from deeprc.pipeline.batch import BatchBackend

        backend = BatchBackend(site, cores=cores, rank_lines=rank_lines)
    elif runner == "pilot":
        from deeprc.pipeline.pilot import PilotBackend

        from deeprc.pipeline.overlap import with_overlap

        backend = PilotBackend(site, site_name=site_name, cores=cores, pilot=pilot)
        if pilot is None:  # a pilot of its own boots: eligible stages start on the launcher meanwhile
            backend = with_overlap(backend, site)
    else:
        raise DeepRCError(f"unknown runner '{runner}'. Fix: use --runner pilot or --runner batch.")
    console = Console(quiet=quiet)
    title = f"{pipe.name} ({pipe.profile}) via {runner} on {site_name}: {run.path}"
    with Progress(run, title, console) as prog:
        engine = Engine(pipe, run, backend, only=list(stages or []), resume=resume, on_change=prog.update, say=prog.say)
        result = engine.execute()
    t_report = time.time()
    if report:
        from deeprc.pipeline.report import build_report

        try:
            md, html = build_report(run.path)
        except Exception as exc:  # a broken plot must not hide the run's own result
            console.print(f"[yellow]report not written: {exc}[/]")
            md = None
    console.print(stage_table(run, f"{pipe.name}: {result.state} in {result.wall_s:.1f} s", metrics=True))
    if report and md:
        console.print(f"report: {md} and {html}")
    from deeprc.pipeline.report import time_split

    split = time_split(run.path)
    if split:
        console.print("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in split.items())
                      + (f", report {time.time() - t_report:.1f} s" if report else ""))
    return result, run.path


@click.command("run")
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option("--site", "site_name", default="local", show_default=True, help="Site name or site YAML path.")
@click.option("--runner", type=click.Choice(["pilot", "batch"]), default="pilot", show_default=True)
@click.option("--profile", default="full", show_default=True, help="full, or a profile of the spec (e.g. small).")
@click.option("--run-dir", type=click.Path(file_okay=False), default=None, help="Run folder (default runs/<name>[-profile]).")
@click.option("--stage", "stages", multiple=True, help="Run only this stage (repeatable); its inputs must exist.")
@click.option("--no-resume", is_flag=True, help="Rerun stages even when their outputs are up to date.")
@click.option("--cores", type=click.IntRange(1, 1_000_000), default=None, help="The pilot's size in cores (default: site or 8 on local); with --runner batch, run "
              "independent stages side by side within this many cores (default: one stage at a time).")
@click.option("--pilot", "pilot_name", default=None, help="Run on this warm pilot (`deeprc-deploy pilot start`); "
              "the run goes on if this command ends, and the same command attaches to it again.")
@click.argument("rank_line", nargs=-1, type=click.UNPROCESSED)
def run(pipeline: str, site_name: str, runner: str, profile: str, run_dir: str | None, stages: tuple[str, ...],
        no_resume: bool, cores: int | None, pilot_name: str | None, rank_line: tuple[str, ...]) -> None:
    """Run PIPELINE here with Radical Pilot (pilot) or one launcher call per stage (batch).

    `--runner batch --stage S -- LINE...`: start S's ranks with exactly LINE (what a batch job script
    rendered by `launch` passes; the entry point reads the attempt from DEEPRC_ATTEMPT).
    """
    if rank_line and (runner != "batch" or len(stages) != 1):
        raise DeepRCError("a rank line after `--` needs --runner batch and exactly one --stage. "
                          "Fix: add them, or drop the words after `--`.")
    if pilot_name:
        if runner != "pilot" or cores:
            raise DeepRCError("--pilot runs on the warm pilot's own cores and site. Fix: drop --runner batch and "
                              "--cores (size the pilot with `deeprc-deploy pilot start --cores N`).")
        from deeprc.pipeline.warm import run_on_pilot

        run_on_pilot(pilot_name, pipeline, profile, run_dir, list(stages), not no_resume)
        return
    site = load_site_or_default(site_name)
    from deeprc.pipeline.pilot_layout import inside_allocation

    if (runner == "batch" and not stages and site is not None and getattr(site, "scheduler", "local") != "local"
            and not inside_allocation()):
        _delegate_launch(pipeline, site_name, profile, run_dir)
        return
    result, path = run_pipeline(pipeline, site_name=site_name, runner=runner, profile=profile, run_dir=run_dir,
                                stages=list(stages), resume=not no_resume, cores=cores,
                                rank_lines={stages[0]: list(rank_line)} if rank_line else None)
    if result.state == "canceled":
        sys.exit(128 + int(result.signum or 2))
    if result.state != "done":
        raise failure_error(result, path)


def failure_error(result: Any, path: Path) -> DeepRCError:
    """The one-paragraph error of a failed run: which stage, why (the stage's own DeepRC error, a timeout,
    or its exit), where its log is, what was skipped."""
    from deeprc.pipeline.runfolder import last_error

    failed = [n for n, s in result.stages.items() if s.get("state") == "failed"] or list(result.failed)
    reasons = []
    for n in failed:
        log = path / "logs" / (n + ".log")
        why = last_error(log) or (result.stages.get(n, {}).get("error") or "").strip() or "see its log"
        reasons.append(f"stage '{n}' failed: {why.rstrip('.')} (log: {log})")
    skipped = [n for n, s in result.stages.items() if s.get("state") == "skipped"]
    return DeepRCError(
        f"run {path} failed after the stages' retries. " + "; ".join(reasons)
        + (f". Its dependants were skipped: {', '.join(skipped)}" if skipped else "")
        + ". Fix: correct what the stage's message names, and rerun the same command (finished stages are reused).",
        exit_code=1,
    )


def _delegate_launch(pipeline: str, site_name: str, profile: str, run_dir: str | None) -> None:
    """Batch on a scheduler site is one job per stage (afterok): that is `deeprc-deploy launch --mode batch`."""
    from deeprc.cli import cli

    args = ["launch", pipeline, "--site", site_name, "--mode", "batch", "--profile", profile]
    if run_dir:
        args += ["--run-dir", run_dir]
    cli.main(args, prog_name="deeprc-deploy", standalone_mode=False)


@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
def report(run_dir: str) -> None:
    """(Re)write report.md, report.html and the timeline chart of the run folder RUN_DIR (nothing else)."""
    from deeprc.pipeline.report import build_report

    md, html = build_report(run_dir)
    click.echo(f"report: {md} and {html}")
