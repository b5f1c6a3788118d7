"""`deeprc-deploy build`: render containers/recipe.yaml and build the DeepRC image.

One recipe (containers/recipe.yaml) renders into an OCI Containerfile and an Apptainer
definition; podman, docker or apptainer builds it; the image reference and digest go to
`.deeprc/images.json`, which `launch` reads through :func:`image_record`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import yaml

from deeprc import __version__
from deeprc.errors import DeepRCError, config_error

RECIPE = Path("containers") / "recipe.yaml"
METADATA_ENV = "DEEPRC_IMAGES_FILE"
DEFAULT_METADATA = Path(".deeprc") / "images.json"
OCI_RUNTIMES = ("podman", "podman-hpc", "docker")
SIF_RUNTIMES = ("apptainer", "singularity")
DIR_RUNTIMES = ("charliecloud",)  # an OCI build with podman, unpacked into a directory (deeprc.runtimes.charliecloud)
_PROGRAM = {"charliecloud": "ch-run"}
_RECIPE_KEYS = {"name", "user", "workdir", "entrypoint", "cmd", "args", "variants", "env", "labels", "steps",
                "mpi_versions"}
# site MPI flavours whose libraries follow the MPICH ABI (hybrid model: bind the host's over the image's)
MPICH_ABI = {"mpich", "cray-mpich", "intel-mpi", "mvapich2"}


# ---------------------------------------------------------------- recipe and rendering


def find_context(start: Path | None = None) -> Path:
    """The repository root (holds containers/recipe.yaml): cwd or a parent, else the source tree."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents, Path(__file__).resolve().parents[1]):
        if (folder / RECIPE).is_file():
            return folder
    raise DeepRCError(
        f"no {RECIPE} found in {here} or its parents: `deeprc-deploy build` needs the DeepRC "
        "source tree. Fix: run it from a checkout of the repository or pass --context PATH."
    )


def load_recipe(context: Path) -> dict[str, Any]:
    """Read and check containers/recipe.yaml."""
    path = context / RECIPE
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise config_error(path, None, f"is not valid YAML{where} ({problem})", "correct the YAML syntax") from exc
    if not isinstance(data, dict):
        raise config_error(path, None, "must be a mapping", "restore the file from the repository")
    unknown = sorted(set(data) - _RECIPE_KEYS)
    if unknown:
        raise config_error(path, unknown[0], "is not a recipe key", f"use only {sorted(_RECIPE_KEYS)}")
    declared = set(data.get("args", {}))
    for i, step in enumerate(data.get("steps", [])):
        for name in step.get("args", []):
            if name not in declared:
                raise config_error(path, f"steps[{i}].args", f"names '{name}', which is not under 'args'",
                                   "add it to 'args' or remove it from the step")
        script = context / step.get("script", "")
        if not step.get("script") or not script.is_file():
            raise config_error(path, f"steps[{i}].script", f"'{step.get('script')}' is not a file", "point it at a script under containers/steps/")
    return data


def variants(recipe: dict[str, Any]) -> list[str]:
    return list(recipe["variants"])


def resolve_args(recipe: dict[str, Any], variant: str, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Build arguments for a variant: recipe defaults, variant defaults, then overrides."""
    if variant not in recipe["variants"]:
        raise config_error(RECIPE, "variants", f"has no variant '{variant}'", f"use one of {variants(recipe)}")
    args = {k: str(v) for k, v in recipe["args"].items()}
    args.update({k: str(v) for k, v in (recipe["variants"][variant] or {}).get("args", {}).items()})
    for key, value in (overrides or {}).items():
        if key not in args:
            raise config_error(RECIPE, "args", f"has no build argument '{key}'", f"use one of {sorted(args)}")
        args[key] = str(value)
    overrides = overrides or {}
    if "MPI" in overrides and "MPI_VERSION" not in overrides:
        versions = recipe.get("mpi_versions", {})
        if args["MPI"] not in versions:
            raise config_error(RECIPE, "mpi_versions", f"has no version for MPI '{args['MPI']}'",
                               f"pass --build-arg MPI_VERSION=... or use one of {sorted(versions)}")
        args["MPI_VERSION"] = str(versions[args["MPI"]])
    args["DEEPRC_VERSION"] = __version__
    args["VARIANT"] = variant
    return args


def expand(value: str, args: dict[str, str]) -> str:
    """Replace ${NAME} with the build argument NAME."""
    return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), value)


def _dq(value: Any) -> str:
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def render(context: Path, recipe: dict[str, Any], variant: str, fmt: str, args: dict[str, str],
           *, tag: str = "", recipe_path: str = "", bootstrap: str = "docker") -> str:
    """Render the recipe as `containerfile` or `def` text."""
    import jinja2

    spec = recipe["variants"][variant] or {}
    labels = {**recipe["labels"], **spec.get("labels", {})}
    env = {**recipe["env"], **spec.get("env", {})}
    steps = [
        {"name": s["name"], "script": s["script"], "paths": list(s.get("copy", [])), "inputs": bool(s.get("inputs")),
         "run": f"sh /opt/deeprc/steps/{Path(s['script']).name}", "args": list(s.get("args", []))}
        for s in recipe["steps"]
    ]
    in_steps = {a for s in steps for a in s["args"]}
    late = [a for a in args if a not in in_steps and a != "BASE_IMAGE"]  # used by labels only
    template_name = {"containerfile": "Containerfile.j2", "def": "apptainer.def.j2"}[fmt]
    loader = jinja2.FileSystemLoader(str(context / "containers"))
    jenv = jinja2.Environment(loader=loader, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    jenv.filters["dq"] = _dq  # Containerfile strings (the builder expands $VAR, never runs code)
    jenv.filters["sq"] = lambda v: shlex.quote(str(v))  # shell lines (Apptainer's %post and %environment)
    if fmt == "def":  # Apptainer has no build arguments: values are rendered in
        labels = {k: expand(str(v), args) for k, v in labels.items()}
    return jenv.get_template(template_name).render(
        variant=variant, args=args, late_args=late, labels=labels, env=env, steps=steps, user=recipe["user"],
        workdir=recipe["workdir"], entrypoint=recipe["entrypoint"], cmd=recipe["cmd"],
        tag=tag or default_tag(variant), recipe_path=recipe_path, bootstrap=bootstrap)


def write_recipes(context: Path, recipe: dict[str, Any], variant: str, args: dict[str, str], outdir: Path,
                  *, tag: str = "", bootstrap: str = "docker") -> tuple[Path, Path]:
    """Write `Containerfile` and `deeprc.def` for a variant into outdir."""
    outdir.mkdir(parents=True, exist_ok=True)
    files = []
    for fmt, name in (("containerfile", "Containerfile"), ("def", "deeprc.def")):
        path = outdir / name
        shown = os.path.relpath(path, context)
        path.write_text(render(context, recipe, variant, fmt, args, tag=tag, recipe_path=shown, bootstrap=bootstrap))
        files.append(path)
    return files[0], files[1]


def default_tag(variant: str) -> str:
    return f"localhost/deeprc:{__version__}-{variant}"


# ---------------------------------------------------------------- build inputs


def stage_inputs(context: Path, wheels: list[Path], certs: list[Path]) -> None:
    """Put site wheels (pycylon, torch, ...) and CA certificates into containers/inputs."""
    for sources, sub, pattern in ((wheels, "wheels", "*.whl"), (certs, "certs", "*.crt")):
        dest = context / "containers" / "inputs" / sub
        dest.mkdir(parents=True, exist_ok=True)
        for src in sources:
            files = sorted(src.glob(pattern)) if src.is_dir() else [src]
            if not files or not all(f.is_file() for f in files):
                option = "--ca-cert" if sub == "certs" else "--wheels"
                raise DeepRCError(f"{option} {src}: no {pattern} file there. "
                                  f"Fix: pass a {pattern} file or a folder holding some.")
            for f in files:
                target = dest / (f.name if sub == "wheels" else f.stem + ".crt")
                if target.exists() and target.stat().st_size == f.stat().st_size:
                    continue
                target.unlink(missing_ok=True)
                try:
                    os.link(f, target)
                except OSError:
                    shutil.copy2(f, target)


def pycylon_version(context: Path) -> str | None:
    """The version of a site-supplied pycylon wheel in containers/inputs/wheels, if any."""
    for wheel in sorted((context / "containers" / "inputs" / "wheels").glob("pycylon-*.whl")):
        return wheel.name.split("-")[1]
    return None


def check_copies(context: Path, recipe: dict[str, Any]) -> None:
    for i, step in enumerate(recipe["steps"]):
        for path in step.get("copy", []):
            if not (context / path).exists():
                raise config_error(context / RECIPE, f"steps[{i}].copy", f"names '{path}', which is not in {context}",
                                   "restore the file or remove it from the step's copy list")


# ---------------------------------------------------------------- runtimes and plan


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


# ---------------------------------------------------------------- running with progress

_STEP_PATTERNS = (
    re.compile(r"^STEP (\d+)/(\d+): (.*)"),                      # podman / buildah
    re.compile(r"^#\d+ \[(?:\S+ )?\s*(\d+)/(\d+)\] (.*)"),        # docker buildkit
    re.compile(r"^Step (\d+)/(\d+) : (.*)"),                     # docker classic
)


def run_logged(cmd: list[str], log: Path, console: Any, label: str, cwd: Path, verbose: bool = False) -> None:
    """Run one command, stream its output to a log, and show its current build step."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console.print(f"$ {shlex.join(cmd)}", markup=False, soft_wrap=True)
    tail: list[str] = []
    with log.open("a") as out, Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                        TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                                        console=console, transient=True) as progress:
        task = progress.add_task(label, total=None)
        out.write(f"$ {shlex.join(cmd)}\n")
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            line = line.rstrip()
            tail = (tail + [line])[-40:]
            if verbose:
                progress.console.print(line, markup=False, highlight=False)
            for pattern in _STEP_PATTERNS:
                m = pattern.match(line)
                if m:
                    done, total = int(m.group(1)), int(m.group(2))
                    what = re.sub(r"--mount=\S+\s+", "", m.group(3))
                    progress.update(task, completed=done - 1, total=total, description=f"{label}: {what[:70]}")
                    console.print(f"  step {done}/{total}: {what[:100]}", markup=False, highlight=False, soft_wrap=True)
                    break
        code = proc.wait()
        progress.update(task, completed=progress.tasks[0].total or 1)
    if code != 0:
        raise DeepRCError(f"`{shlex.join(cmd)}` failed with exit status {code}; the full log is {log}. "
                          f"Last lines:\n" + "\n".join(tail[-15:]) + "\nFix: correct the cause shown above and rerun.",
                          exit_code=code if 0 < code < 126 else 1)


def inspect_oci(builder: str, tag: str) -> dict[str, Any]:
    """Digest, id, size and labels of a built OCI image."""
    proc = subprocess.run([builder, "image", "inspect", tag], capture_output=True, text=True)
    if proc.returncode != 0:
        raise DeepRCError(f"`{builder} image inspect {tag}` failed: {proc.stderr.strip()}. Fix: check that the build produced {tag}.")
    info = json.loads(proc.stdout)[0]
    labels = info.get("Labels") or (info.get("Config") or {}).get("Labels") or {}
    digest = info.get("Digest") or next(iter(info.get("RepoDigests") or []), "").split("@")[-1]
    return {"digest": digest, "id": info.get("Id"), "size_bytes": int(info.get("Size") or 0), "labels": labels}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} GiB"


def execute(plan: BuildPlan, console: Any, verbose: bool = False) -> dict[str, Any]:
    """Run the plan's commands and return the image record for the metadata file."""
    log = plan.containerfile.parent / "build.log"
    log.write_text("")
    started = time.monotonic()
    for i, cmd in enumerate(plan.commands, 1):
        run_logged(cmd, log, console, f"[{i}/{len(plan.commands)}] {cmd[0]} {cmd[1]}", plan.context, verbose)
    record: dict[str, Any] = {
        "variant": plan.variant, "runtime": plan.runtime, "ref": plan.tag,
        "built": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(time.monotonic() - started, 1), "args": plan.args,
        "containerfile": str(plan.containerfile), "def": str(plan.deffile), "log": str(log),
    }
    if plan.oci_builder:
        record.update(inspect_oci(plan.oci_builder, plan.tag))
        record["oci_builder"] = plan.oci_builder
    if plan.image_dir is not None:
        record["image_dir"] = str(plan.image_dir.resolve())
    if plan.sif is not None:
        record["sif"] = str(plan.sif.resolve())
        record["sif_digest"] = _sha256(plan.sif)
        record["sif_size_bytes"] = plan.sif.stat().st_size
        record.setdefault("digest", record["sif_digest"])
        record.setdefault("size_bytes", record["sif_size_bytes"])
    return record


# ---------------------------------------------------------------- metadata for launch


def metadata_path(path: str | Path | None = None) -> Path:
    return Path(path or os.environ.get(METADATA_ENV) or DEFAULT_METADATA)


def load_images(path: str | Path | None = None) -> dict[str, Any]:
    """All built images: {"images": {variant: record}} (empty when nothing was built)."""
    p = metadata_path(path)
    if not p.is_file():
        return {"images": {}}
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise config_error(p, None, f"is not valid JSON ({exc})", "delete it and run `deeprc-deploy build` again") from exc
    if not isinstance(data, dict) or not isinstance(data.get("images"), dict):
        raise config_error(p, "images", "is missing", "delete the file and run `deeprc-deploy build` again")
    return data


def image_record(variant: str = "cpu", path: str | Path | None = None) -> dict[str, Any]:
    """The last build of a variant: ref, digest, runtime, sif (for apptainer), labels."""
    p = metadata_path(path)
    record = load_images(p)["images"].get(variant)
    if record is None:
        raise config_error(p, f"images.{variant}", "has no image of this variant",
                           f"run `deeprc-deploy build --variant {variant}` first")
    return record


def save_record(record: dict[str, Any], path: str | Path | None = None) -> Path:
    p = metadata_path(path)
    data = load_images(p)
    data["images"][record["variant"]] = record
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.parent.name == ".deeprc" and not (p.parent / ".gitignore").exists():
        (p.parent / ".gitignore").write_text("*\n")
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(p)
    return p


# ---------------------------------------------------------------- command


def _parse_build_args(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", key):
            raise DeepRCError(f"--build-arg '{item}' is not KEY=VALUE. Fix: write it like --build-arg MPI=mpich.")
        out[key] = value
    return out


@dataclass
class SiteDefaults:
    """What a site config says about its image."""

    runtime: str | None = None
    image: str | None = None
    variant: str | None = None
    binds: list[str] = field(default_factory=list)  # bind targets (charliecloud creates them in the image)
    build_args: dict[str, str] = field(default_factory=dict)


def site_defaults(name: str | None) -> SiteDefaults:
    """Runtime, image name, variant (NVIDIA GPUs: cuda) and MPI flavour of a site."""
    if not name:
        return SiteDefaults()
    from deeprc.sites import load_site

    site = load_site(name)
    out = SiteDefaults(site.container.runtime, site.container.image, binds=list(site.container.binds))
    if any(p.gpus_per_node and p.gpu_vendor == "nvidia" for p in site.partitions.values()):
        out.variant = "cuda"
    out.build_args["MPI"] = "mpich" if site.mpi.flavour in MPICH_ABI else "openmpi"
    return out


@click.command()
@click.option("--variant", type=click.Choice(["cpu", "cuda"]), default=None,
              help="Default: cuda for a site with NVIDIA GPUs, else cpu.")
@click.option("--runtime", type=click.Choice(["podman", "podman-hpc", "docker", "apptainer", "singularity", "charliecloud"]),
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
    variant = variant or defaults.variant or "cpu"
    chosen = choose_runtime(runtime, defaults.runtime) if not (dry_run and runtime) else runtime
    if site_image and not tag and chosen in OCI_RUNTIMES:
        tag = site_image
    if site_image and sif_path is None and chosen in SIF_RUNTIMES and site_image.endswith(".sif"):
        sif_path = Path(site_image)
    if site_image and sif_path is None and chosen in DIR_RUNTIMES:
        sif_path = Path(os.path.expandvars(site_image))
    if not dry_run:
        stage_inputs(ctx_dir, list(wheels), list(ca_certs))
    check_copies(ctx_dir, load_recipe(ctx_dir))
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


def render_defaults(context: Path | None = None) -> list[Path]:
    """Rewrite containers/rendered/<variant>/ with the recipe's default arguments."""
    ctx = (context or find_context()).resolve()
    recipe = load_recipe(ctx)
    written = []
    for variant in variants(recipe):
        args = resolve_args(recipe, variant)
        written += write_recipes(ctx, recipe, variant, args, ctx / "containers" / "rendered" / variant)
    return written


if __name__ == "__main__":  # python -m deeprc.images: refresh containers/rendered/
    for path in render_defaults():
        print(path)
