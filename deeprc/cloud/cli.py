"""`deeprc-deploy bootstrap`: render cloud-init user-data and a bootstrap script for cloud VMs."""

from __future__ import annotations

import os
from pathlib import Path

import click

from deeprc.cloud.keys import KeyPair, generate_keypair, gzip_bytes, load_keypair, redact, write_secret
from deeprc.cloud.provision import AWS_USER_DATA_LIMIT, render_provision
from deeprc.cloud.plan import make_plan, parse_hosts
from deeprc.cloud.render import render_script, render_user_data
from deeprc.errors import DeepRCError


@click.command(name="bootstrap")
@click.option("--site", "site_name", required=True, help="A cloud site (name or YAML path) with a `cloud:` section.")
@click.option("--nodes", type=click.IntRange(1, 10_000), default=None, help="Number of VMs (default: the number of --hosts, else 1).")
@click.option("--hosts", default=None, help="The VMs' private addresses, comma-separated; the first one starts the pipeline.")
@click.option("--pipeline", default=None, help="Pipeline to start when the VMs are ready (path on the VM); none: leave them ready.")
@click.option("--pipeline-arg", "pipeline_args", multiple=True, help="Extra argument for `deeprc-deploy run` (repeatable).")
@click.option("--install", type=click.Choice(["image", "venv", "none"]), default=None,
              help="image: pull container.image (default with podman/docker); venv: pip install DeepRC into /opt/deeprc/venv.")
@click.option("--source", default=None, help="What pip installs for --install venv (default deeprc==VERSION; a path or URL on the VM works).")
@click.option("--wheels", default="", help="A folder of wheels on the VM for pip --find-links (e.g. the CPU torch wheel).")
@click.option("--offline", is_flag=True, help="pip uses only --wheels (no package index).")
@click.option("--no-deps", is_flag=True, help="Install DeepRC without its dependencies, then only the --package list (a lean VM).")
@click.option("--package", "packages", multiple=True, help="Extra pip requirement installed beside DeepRC (repeatable).")
@click.option("--ssh-key", type=click.Path(dir_okay=False), default=None, help="Use this private key (and PATH.pub) instead of generating one.")
@click.option("--peer-timeout", type=click.IntRange(1, 86_400), default=600, show_default=True, help="Seconds each VM waits for the others to answer over ssh.")
@click.option("--sites-dir", type=click.Path(file_okay=False), default=None, help="An extra folder of site YAML files.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="deeprc-bootstrap", show_default=True,
              help="Where user-data.yaml, bootstrap.sh, the key pair, hostfile and launch.sh go.")
@click.option("--dry-run", is_flag=True, help="Print the user-data (private key redacted) and the launch command; write nothing.")
def bootstrap(site_name: str, nodes: int | None, hosts: str | None, pipeline: str | None, pipeline_args: tuple[str, ...],
              install: str | None, source: str | None, wheels: str, offline: bool, no_deps: bool, packages: tuple[str, ...],
              ssh_key: str | None, peer_timeout: int, sites_dir: str | None, out_dir: str, dry_run: bool) -> None:
    """Turn fresh cloud VMs into a DeepRC site: render cloud-init user-data and a plain bootstrap script.

    The script installs the container runtime (and NVIDIA container tooling on GPU VMs),
    sets the fabric and NCCL/Gloo settings, installs DeepRC (image or venv), writes the site
    config and, for several VMs, the MPI hostfile and a per-cluster SSH key; then it starts
    --pipeline on the first VM or leaves the VMs ready. Progress: /var/lib/deeprc/runs/bootstrap.
    """
    from deeprc.sites import load_site

    site = load_site(site_name, sites_dir)
    host_list = parse_hosts(hosts)
    n = nodes if nodes is not None else max(len(host_list), 1)
    out = Path(out_dir)
    if out.is_dir() and any(out.iterdir()) and not (out / "bootstrap.sh").is_file():
        raise DeepRCError(f"bootstrap: --out {out} is a folder with other files in it (no bootstrap.sh from an earlier "
                          "bootstrap). Fix: choose a new or empty folder, or the --out of an earlier bootstrap.")
    keys: KeyPair | None = None
    if host_list or n > 1:
        if ssh_key:
            keys = load_keypair(ssh_key)
        elif (out / "cluster_key").is_file():  # a rerun keeps the cluster's key (VMs may already trust it)
            keys = load_keypair(out / "cluster_key")
        else:
            keys = generate_keypair(f"deeprc-cluster-{site.name}")
    plan = make_plan(
        site, nodes=n, hosts=host_list, pipeline=pipeline, pipeline_args=list(pipeline_args), install=install,  # type: ignore[arg-type]
        source=source, wheels=wheels, offline=offline, no_deps=no_deps, packages=list(packages), keys=keys,
        peer_timeout=peer_timeout,
    )
    script = render_script(plan)
    user_data = render_user_data(script)
    gz_size = len(gzip_bytes(user_data))
    if site.cloud.provider == "aws" and gz_size > AWS_USER_DATA_LIMIT:
        raise DeepRCError(
            f"bootstrap: the user-data for site '{site.name}' is {gz_size} bytes gzip'd, above EC2's 16 KB limit. "
            "Fix: shorten the site's environment and package lists, or run bootstrap.sh over ssh instead of as user-data."
        )
    launch = render_provision(site, pipeline, n, out / "user-data.yaml")
    if dry_run:
        click.echo(f"# {out / 'user-data.yaml'}")
        click.echo(redact(user_data, keys), nl=False)
        click.echo(f"# launch command ({site.cloud.provider})")
        click.echo(launch)
        return
    out.mkdir(parents=True, exist_ok=True)
    write_secret(out / "user-data.yaml", user_data)
    write_secret(out / "user-data.yaml.gz", gzip_bytes(user_data))
    write_secret(out / "bootstrap.sh", script)
    os.chmod(out / "bootstrap.sh", 0o700)
    written = ["user-data.yaml (0600)", "user-data.yaml.gz (0600, for EC2's 16 KB limit)", "bootstrap.sh (0700)"]
    if keys is not None:
        if not ssh_key:
            write_secret(out / "cluster_key", keys.private)
            (out / "cluster_key.pub").write_text(keys.public)
            written += ["cluster_key (0600)", "cluster_key.pub"]
        (out / "hostfile").write_text("".join(f"{h} slots={plan.slots}\n" for h in plan.hosts))
        written.append("hostfile")
    (out / "launch.sh").write_text("#!/bin/sh\n# Start the VMs (needs cloud credentials)\n" + launch + "\n")
    written.append("launch.sh")
    click.echo(f"bootstrap for site '{site.name}' ({plan.nodes} VM{'s' if plan.nodes > 1 else ''}, install={plan.install}) written to {out}/:")
    for w in written:
        click.echo(f"  {w}")
    click.echo("start the VMs with:")
    click.echo(f"  {launch}")
    click.echo("or run bootstrap.sh as root on VMs without cloud-init; follow it with "
               "`deeprc-deploy status /var/lib/deeprc/runs/bootstrap` on the first VM.")
