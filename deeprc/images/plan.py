"""Build planning: which runtime builds, and the exact commands of a build (BuildPlan).

To add a build runtime, name it in one of the runtime tuples below (they are `--runtime`'s
choices) and, when it builds differently from the others of its tuple, give it a branch in
:func:`plan_build`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from deeprc.errors import DeepRCError
from deeprc.images.inputs import pycylon_version
from deeprc.images.recipe import load_recipe, resolve_args
from deeprc.images.render import default_tag, write_recipes

OCI_RUNTIMES = ("podman", "podman-hpc", "docker")
SIF_RUNTIMES = ("apptainer", "singularity")
DIR_RUNTIMES = ("charliecloud",)  # an OCI build with podman, unpacked into a directory (deeprc.runtimes.charliecloud)
_PROGRAM = {"charliecloud": "ch-run"}


def _docker_engine_up() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def choose_runtime(requested: str | None, site_runtime: str | None) -> str:
    """The runtime to build with: --runtime, the site's runtime, then the first one present."""
    for name, origin in ((requested, "--runtime"), (site_runtime, "the site's container.runtime")):
        if not name or name == "none":
            continue
        if name not in OCI_RUNTIMES + SIF_RUNTIMES + DIR_RUNTIMES:
            if origin != "--runtime":
                continue  # e.g. shifter: build with what is present, convert on the site
            raise DeepRCError(f"{origin} '{name}' cannot build images. Fix: use podman, docker, apptainer or charliecloud.")
        if name in DIR_RUNTIMES and shutil.which("podman") is None:
            raise DeepRCError(f"{origin} {name}: its image is built with podman, which is not on PATH. Fix: install podman.")
        if shutil.which(_PROGRAM.get(name, name)) is None:
            if origin == "--runtime":
                raise DeepRCError(f"--runtime {name}: `{name}` is not on PATH. Fix: install it or choose another runtime.")
            continue
        return name
    for name in ("podman", "apptainer", "singularity", "docker"):
        if shutil.which(name) and (name != "docker" or _docker_engine_up()):
            return name
    raise DeepRCError("no container runtime found (podman, docker, apptainer). "
                      "Fix: install one (tests/infra/podman.sh sets up podman) or pass --runtime.")


@dataclass
class BuildPlan:
    """Everything `build` will do, as exact commands."""

    variant: str
    runtime: str
    tag: str
    context: Path
    containerfile: Path
    deffile: Path
    args: dict[str, str]
    commands: list[list[str]] = field(default_factory=list)
    sif: Path | None = None
    image_dir: Path | None = None  # charliecloud: the unpacked image
    oci_builder: str | None = None


def _oci_build_cmd(builder: str, containerfile: Path, tag: str, context: Path, network_host: bool) -> list[str]:
    cmd = [builder, "build", "-f", str(containerfile), "-t", tag]
    if network_host:
        cmd += ["--network", "host"]
    cmd.append(str(context))
    return cmd


def plan_build(context: Path, variant: str, runtime: str, *, tag: str | None, base: str | None,
               build_args: dict[str, str], push: bool, sif_from: str, sif_path: Path | None,
               network_host: bool = True, outdir: Path | None = None, mount_points: list[str] | None = None) -> BuildPlan:
    """Render the recipe for this build and list the commands that build (and push) it."""
    recipe = load_recipe(context)
    overrides = dict(build_args)
    if base:
        overrides["BASE_IMAGE"] = base
    cylon = pycylon_version(context)
    if cylon and "PYCYLON_VERSION" not in overrides:
        overrides["PYCYLON_VERSION"] = cylon
    args = resolve_args(recipe, variant, overrides)
    tag = tag or default_tag(variant)
    for what, value in [("--tag", tag), *((f"--build-arg {k}" if k != "BASE_IMAGE" else "--base", v) for k, v in args.items())]:
        if re.search(r"[\x00-\x1f\x7f]", str(value)):
            raise DeepRCError(f"{what} {str(value)!r} contains a line break or another control character, which would "
                              "start a new instruction in the rendered recipe. Fix: pass a single-line value.")
    outdir = outdir or Path(".deeprc") / "build" / re.sub(r"[^A-Za-z0-9_.-]+", "_", tag)
    if not outdir.is_absolute():
        outdir = Path.cwd() / outdir
    _ensure_private(outdir)
    bootstrap = "docker"
    containerfile, deffile = write_recipes(context, recipe, variant, args, outdir, tag=tag, bootstrap=bootstrap)
    plan = BuildPlan(variant, runtime, tag, context, containerfile, deffile, args)
    if runtime in OCI_RUNTIMES:
        plan.oci_builder = runtime
        plan.commands.append(_oci_build_cmd(runtime, containerfile, tag, context, network_host))
        if push:
            plan.commands.append([runtime, "push", tag])
        return plan
    if runtime in DIR_RUNTIMES:  # build with podman, then unpack for ch-run (its mount points created)
        plan.oci_builder = "podman"
        plan.commands.append(_oci_build_cmd("podman", containerfile, tag, context, network_host))
        plan.image_dir = sif_path or outdir / f"deeprc-{variant}"
        plan.commands.append([sys.executable, "-m", "deeprc.runtimes.charliecloud", "unpack", tag, str(plan.image_dir),
                              *[a for m in mount_points or [] for a in ("--mount-point", m)]])
        return plan
    plan.sif = sif_path or outdir / f"deeprc-{variant}.sif"
    if sif_from == "def":
        plan.commands.append([runtime, "build", "--force", str(plan.sif), str(deffile)])
    else:
        builder = next((b for b in ("podman", "docker") if shutil.which(b)), None)
        if builder is None:
            raise DeepRCError("--sif-from oci needs podman or docker to build the OCI image first. "
                              "Fix: install podman, or pass --sif-from def.")
        plan.oci_builder = builder
        plan.commands.append(_oci_build_cmd(builder, containerfile, tag, context, network_host))
        if builder == "podman":
            archive = outdir / f"deeprc-{variant}.oci.tar"
            plan.commands.append(["podman", "save", "--format", "oci-archive", "-o", str(archive), tag])
            plan.commands.append([runtime, "build", "--force", str(plan.sif), f"oci-archive://{archive}"])
        else:
            plan.commands.append([runtime, "build", "--force", str(plan.sif), f"docker-daemon://{tag}"])
    if push:
        plan.commands.append([runtime, "push", str(plan.sif), f"oras://{tag}"])
    return plan


def _ensure_private(outdir: Path) -> None:
    """Create the .deeprc working folder, kept out of git."""
    outdir.mkdir(parents=True, exist_ok=True)
    for parent in (outdir, *outdir.parents):
        if parent.name == ".deeprc":
            ignore = parent / ".gitignore"
            if not ignore.exists():
                ignore.write_text("*\n")
            break
