"""`deeprc-deploy sites list | show SITE | check SITE`."""

from __future__ import annotations

import json

import click
import yaml

from deeprc.errors import DeepRCError


@click.group("sites")
@click.option("--sites-dir", type=click.Path(file_okay=False), default=None, help="extra folder of site YAML files")
def sites(sites_dir: str | None) -> None:
    """List, show and check site configs ($DEEPRC_SITES_PATH, --sites-dir, site-configs/)."""
    if sites_dir:
        from deeprc.sites import add_sites_dir

        add_sites_dir(sites_dir)


@sites.command("list")
def list_cmd() -> None:
    """Every site on the search path with its scheduler, launcher and runtime."""
    from rich.console import Console
    from rich.table import Table

    from deeprc.sites import detect_site, find_site_file, list_sites, load_site

    here = detect_site()
    t = Table()
    for col in ("site", "scheduler", "launcher", "runtime", "partitions", "file"):
        t.add_column(col)
    broken = []
    for name in list_sites():
        try:
            s = load_site(name)
        except DeepRCError as exc:  # one bad file must not hide the other sites
            broken.append(str(exc))
            t.add_row(name, "[red]invalid[/]", "-", "-", "-", str(find_site_file(name)))
            continue
        mark = " (this host)" if name == here else ""
        t.add_row(name + mark, s.scheduler, s.launcher, s.container.runtime, ", ".join(s.partitions) or "-",
                  str(find_site_file(name)))
    Console().print(t)
    if broken:
        raise DeepRCError(f"{len(broken)} site file(s) are invalid; the first: {broken[0]}")


@sites.command("show")
@click.argument("site")
@click.option("--rp", is_flag=True, help="also print the generated Radical Pilot resource config")
def show(site: str, rp: bool) -> None:
    """The validated site (defaults filled in) as YAML."""
    from deeprc.sites import load_site

    s = load_site(site)
    click.echo(yaml.safe_dump(s.model_dump(exclude_none=True), sort_keys=False), nl=False)
    if rp:
        from deeprc.rp.config import rp_resource

        label, cfg = rp_resource(s)
        click.echo(f"# Radical Pilot resource: {label}")
        click.echo(json.dumps(cfg, indent=2) if cfg else "# (Radical Pilot's own config)")


@sites.command("check")
@click.argument("site")
def check(site: str) -> None:
    """Validate SITE, then probe this host: commands, modules, runtime, image, GPUs."""
    from rich.console import Console

    from deeprc.sites import load_site
    from deeprc.sites.probe import probe

    s = load_site(site)
    console = Console()
    from deeprc.sites.probe import on_this_site

    where = "this host is on the site" if on_this_site(s) else "this host is not on the site: missing items are expected"
    console.print(f"[green]valid[/]: {s.name} ({s.scheduler}, {s.launcher}, {s.container.runtime}); {where}")
    bad = 0
    for item, ok, detail in probe(s):
        word, style = ("ok", "green") if ok else (("missing", "yellow") if ok is None else ("FAIL", "red"))
        bad += ok is False
        console.print(f"  [{style}]{word:<8}[/] {item}: {detail}", highlight=False, soft_wrap=True)
    if bad:
        raise SystemExit(1)
