"""`deeprc-deploy build`: render containers/recipe.yaml and build the DeepRC image.

The variant comes from --variant, else the site's `container.variant`, else cpu; the runtime
from --runtime, else the site's `container.runtime`, else the first one present.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import click

from deeprc.errors import DeepRCError
from deeprc.images.build import execute, human_size
from deeprc.images.inputs import stage_inputs
from deeprc.images.plan import DIR_RUNTIMES, OCI_RUNTIMES, SIF_RUNTIMES, choose_runtime, plan_build
from deeprc.images.recipe import check_copies, find_context, load_recipe, variants
from deeprc.images.site import site_defaults
from deeprc.images.store import DEFAULT_METADATA, METADATA_ENV, save_record
from deeprc.sites.schema import is_image_file


def _parse_build_args(values: tuple[str, ...]) -> dict[str, str]:
    """--build-arg KEY=VALUE options as a dict."""
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", key):
            raise DeepRCError(f"--build-arg '{item}' is not KEY=VALUE. Fix: write it like --build-arg MPI=mpich.")
        out[key] = value
    return out


@click.command()
@click.option("--variant", default=None, metavar="VARIANT",
              help="A variant of containers/recipe.yaml (cpu, cuda). Default: the site's container.variant, else cpu.")
@click.option("--runtime", type=click.Choice([*OCI_RUNTIMES, *SIF_RUNTIMES, *DIR_RUNTIMES]),
              default=None, help="Default: the site's runtime, else the first one present.")
@click.option("--site", default=None, help="Site name or file; its container runtime and image name are used.")
@click.option("--base", default=None, help="Base image (build argument BASE_IMAGE).")
@click.option("--tag", default=None, help="Image reference (default localhost/deeprc:VERSION-VARIANT).")
@click.option("--push", is_flag=True, help="Push the image after building it.")
@click.option("--dry-run", is_flag=True, help="Render the recipes and print the exact commands; build nothing.")
@click.option("--build-arg", "build_args", multiple=True, metavar="KEY=VALUE", help="Override a recipe argument.")
@click.option("--wheels", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Wheel file or folder given to pip in the build (e.g. a site's pycylon or a CPU torch).")
@click.option("--ca-cert", "ca_certs", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="CA certificate pip trusts during the build (a site's TLS proxy); not kept in the image.")
@click.option("--sif-from", type=click.Choice(["oci", "def"]), default="oci", show_default=True,
              help="Apptainer: convert the built OCI image, or build from the .def file.")
@click.option("--sif", "sif_path", type=click.Path(path_type=Path), default=None,
              help="Apptainer: the image file to write; Charliecloud: the image directory to unpack into.")
@click.option("--context", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Repository root used as build context (default: found from the current folder).")
@click.option("--metadata", type=click.Path(path_type=Path), default=None,
              help=f"Where the image reference and digest are written (default ${METADATA_ENV} or {DEFAULT_METADATA}).")
@click.option("--verbose", "-v", is_flag=True, help="Show the full build output.")
def build(variant: str | None, runtime: str | None, site: str | None, base: str | None, tag: str | None, push: bool,
          dry_run: bool, build_args: tuple[str, ...], wheels: tuple[Path, ...], ca_certs: tuple[Path, ...],
          sif_from: str, sif_path: Path | None, context: Path | None, metadata: Path | None, verbose: bool) -> None:
    """Build the DeepRC container image from containers/recipe.yaml."""
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    ctx_dir = (context or find_context()).resolve()
    defaults = site_defaults(site)
    site_image = defaults.image
    recipe = load_recipe(ctx_dir)
    known = variants(recipe)
    if variant is not None and variant not in known:
        raise DeepRCError(f"--variant {variant}: containers/recipe.yaml has no such variant. "
                          f"Fix: use one of {', '.join(known)}, or add it under 'variants' in containers/recipe.yaml.")
    variant = variant or defaults.checked_variant(known) or "cpu"
    chosen = choose_runtime(runtime, defaults.runtime) if not (dry_run and runtime) else runtime
    if site_image and not tag and chosen in OCI_RUNTIMES and not is_image_file(site_image):
        tag = site_image  # a site whose image is a file (apptainer's .sif) builds the default tag here
    if site_image and sif_path is None and chosen in SIF_RUNTIMES and site_image.endswith(".sif"):
        sif_path = Path(site_image)
    if site_image and sif_path is None and chosen in DIR_RUNTIMES:
        sif_path = Path(os.path.expandvars(site_image))
    if not dry_run:
        stage_inputs(ctx_dir, list(wheels), list(ca_certs))
    check_copies(ctx_dir, recipe)
    plan = plan_build(ctx_dir, variant, chosen, tag=tag, base=base,
                      build_args={**defaults.build_args, **_parse_build_args(build_args)},
                      push=push, sif_from=sif_from, sif_path=sif_path, mount_points=defaults.binds)
    if dry_run:
        console.print(f"# rendered {plan.containerfile} and {plan.deffile}", markup=False)
        if wheels or ca_certs:
            console.print(f"# would put {[str(w) for w in wheels + ca_certs]} into {ctx_dir / 'containers/inputs'}", markup=False)
        for cmd in plan.commands:
            console.print(f"cd {shlex.quote(str(ctx_dir))} && {shlex.join(cmd)}", markup=False, soft_wrap=True)
        return
    console.print(f"building DeepRC {variant} image {plan.tag} with {chosen} (context {ctx_dir})", markup=False)
    record = execute(plan, console, verbose)
    where = save_record(record, metadata)
    console.print(f"image {record['ref']}  digest {record.get('digest') or '-'}  "
                  f"size {human_size(record.get('size_bytes', 0))}", markup=False)
    if record.get("image_dir"):
        console.print(f"image directory {record['image_dir']} (for ch-run)", markup=False)
    if record.get("sif"):
        console.print(f"sif {record['sif']}  size {human_size(record['sif_size_bytes'])}", markup=False)
    console.print(f"metadata written to {where}", markup=False)
