"""Click commands `launch`, `status`, `logs` and `cancel`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from deeprc.errors import DeepRCError


def _cloud_render(plan) -> str | None:  # noqa: ANN001
    """For cloud sites: the VM launch command from `deeprc.cloud.render_provision` (when that package has it)."""
    if plan.site.cloud is None:
        return None
    import shlex

    from deeprc.cloud import render_provision

    cmd = render_provision(plan.site, str(plan.pipeline_file), plan.nodes)
    return shlex.join(cmd) if isinstance(cmd, list) else str(cmd)


@click.command("launch")
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option("--site", "site", required=True, help="site name (see `sites list`) or path to a site YAML")
@click.option("--mode", type=click.Choice(["pilot", "batch"]), default="pilot", show_default=True,
              help="pilot: one job, Radical Pilot inside; batch: one job per stage chained by dependencies")
@click.option("--nodes", type=click.IntRange(1, 1_000_000), default=None, help="nodes for the pilot job (default: what the largest stage needs)")
@click.option("--time", "walltime", default=None, help="walltime per job, e.g. 01:00:00 (default 1 h, capped by the partition)")
@click.option("--partition", default=None, help="partition/queue from the site config (default: the site's default)")
@click.option("--account", default=None, help="allocation/project to charge (default: the site's account)")
@click.option("--profile", default="full", show_default=True, help="pipeline profile, e.g. small")
@click.option("--run-dir", type=click.Path(file_okay=False), default=None, help="run folder (default: SITE runs folder/PIPELINE-TIME)")
@click.option("--sites-dir", type=click.Path(file_okay=False), default=None, help="extra folder of site YAML files")
@click.option("--dry-run", is_flag=True, help="print the scripts and submit commands, submit nothing")
def launch(pipeline: str, site: str, mode: str, nodes: int | None, walltime: str | None, partition: str | None,
           account: str | None, profile: str, run_dir: str | None, sites_dir: str | None, dry_run: bool) -> None:
    """Render PIPELINE for a site from the deploy/ templates and submit it."""
    from deeprc.launch.plan import make_plan
    from deeprc.launch.render import render

    plan = make_plan(site, pipeline, mode=mode, nodes=nodes, walltime=walltime, partition=partition,
                     account=account, profile=profile, run_dir=run_dir, sites_dir=sites_dir)
    request = render(plan)
    if dry_run:
        cloud = _cloud_render(plan)
        if cloud is not None:
            click.echo(f"### cloud VMs for site {plan.site.name} (deeprc.cloud; then run the jobs below on its head node)")
            click.echo(cloud.rstrip("\n"))
            click.echo()
        click.echo(request.dry_run(), nl=False)
        return
    from deeprc.pipeline.commands import check_image

    check_image(plan.site)  # the image must be there before jobs that run in it are queued
    record = request.submit()
    for j in record["jobs"]:
        click.echo(f"{j['key']}: job {j['job_id']}")
    click.echo(f"run folder: {plan.run_dir}")


_STYLE = {"done": "green", "running": "cyan", "queued": "yellow", "failed": "red", "cancelled": "magenta"}


@click.command("status")
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print the status as JSON")
@click.option("--watch", is_flag=True, help="refresh until the run ends")
def status(run: str, as_json: bool, watch: bool) -> None:
    """Show the state of a launched or local run (RUN/status.json + scheduler job states)."""
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    from deeprc.launch.follow import run_status

    def table() -> tuple[Table, dict]:
        st = run_status(run)
        t = Table(title=f"{st['run_dir']}: {st['run']}")
        t.add_column("stage/job")
        t.add_column("state")
        t.add_column("detail")
        for name, s in st["stages"].items():
            state = s.get("state", "?")
            t.add_row(name, f"[{_STYLE.get(state, 'white')}]{state}[/]", f"attempts {s.get('attempts', 0)}")
        for j in st["jobs"]:
            t.add_row(f"job {j['key']}", f"[{_STYLE.get(j['state'], 'white')}]{j['state']}[/]", str(j["job_id"]))
        return t, st

    if as_json:
        from deeprc.launch.follow import run_status as rs

        st = rs(run)
        st.pop("launch", None)
        click.echo(json.dumps(st, indent=2))
        return
    console = Console()
    if not watch:
        t, st = table()
        console.print(t)
        if st.get("error"):
            console.print(f"[red]error:[/] {st['error']}", markup=True, highlight=False)
        return
    with Live(table()[0], console=console, refresh_per_second=1) as live:
        while True:
            t, st = table()
            live.update(t)
            jobs_over = all(j["state"] in ("done", "failed", "cancelled", "unknown") for j in st["jobs"]) if st["jobs"] else True
            if st["run"] in ("done", "failed", "cancelled") and jobs_over:
                break
            time.sleep(2)


@click.command("logs")
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--stage", default=None, help="only this stage's logs")
@click.option("--tail", type=click.IntRange(0), default=0, help="only the last N lines of each file")
def logs(run: str, stage: str | None, tail: int) -> None:
    """Show the logs of a run or one of its stages."""
    from deeprc.launch.follow import log_files

    files = log_files(run, stage)
    if not files:
        raise DeepRCError(f"{run} has no logs yet. Fix: wait until its jobs start (see `deeprc-deploy status {run}`).")
    for f in files:
        click.echo(f"==> {f} <==")
        lines = Path(f).read_text(errors="replace").splitlines()
        click.echo("\n".join(lines[-tail:] if tail else lines))


@click.command("cancel")
@click.argument("run", type=click.Path(file_okay=False))
def cancel(run: str) -> None:
    """Cancel a launched run's jobs; finished stage outputs stay."""
    from deeprc.launch.follow import cancel as do_cancel

    out = do_cancel(run)
    click.echo(f"cancelled jobs: {', '.join(out['cancelled']) or '(none were running)'}; finished outputs kept in {out['run_dir']}")
