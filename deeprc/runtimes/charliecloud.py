"""Charliecloud: `ch-run --set-env -b SRC:DST IMAGE_DIR -- argv`, and the unpacking of a built OCI image.

Charliecloud runs an image that is a plain directory (or SquashFS file) with unprivileged user
and mount namespaces only: the host's network, PIDs, /tmp and environment stay visible, so MPI
ranks started by srun wire up exactly as on the host (the same model as Apptainer). Two things it
does not do by itself, handled here:

- it does not apply the image's ENV lines: `unpack` writes them to IMAGE/ch/environment and every
  rank line passes `--set-env` (so PATH leads to the image's Python);
- it cannot create bind targets in a read-only image: `unpack` creates the mount points named by
  the site (container.binds) and by the caller (`--mount-point`, e.g. the runs folder).

GPUs: Charliecloud has no per-run GPU flag; inject the host's driver libraries once with
`ch-fromhost --nvidia IMAGE_DIR` (not exercised here: no GPU on the test machines).

`python -m deeprc.runtimes.charliecloud unpack TAG DIR [--mount-point PATH ...]` is the step
`deeprc-deploy build --runtime charliecloud` runs after the OCI build.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from deeprc.errors import DeepRCError
from deeprc.runtimes.base import Runtime, bind_model_env, expand, register_runtime

if TYPE_CHECKING:
    from deeprc.sites.schema import Site

MARKER = "ch/deeprc-image.json"  # which image a directory was unpacked from (reused when it matches)


@register_runtime("charliecloud")
class Charliecloud(Runtime):
    def __init__(self) -> None:
        super().__init__(name="charliecloud", program="ch-run")

    def exec_command(self, image: str | None, argv: Sequence[str], binds: Sequence[str] = (), gpus: bool = False,
                     site: Site | None = None, env: Mapping[str, str] | None = None) -> list[str]:
        out = [self.program, "--set-env"]  # the image's own environment (IMAGE/ch/environment)
        for k, v in bind_model_env(site).items():
            out.append(f"--set-env={k}={v}")
        root = expand(str(image))
        for b in self.all_binds(site, binds):
            out += ["-b", mountable(root, b)]
        out += self.options(site)
        return out + [root, "--", *map(str, argv)]


def mountable(root: str, bind: str) -> str:
    """`bind`, or the nearest folder above it that has a mount point in the image directory `root`.

    ch-run cannot create a bind target in a read-only image; Apptainer would. A run folder such as
    /var/tmp/runs/r1 is then reached through /var/tmp (a mount point `unpack` created). Binds with an
    explicit target, and images this host cannot see (a dry run elsewhere), are left as written.
    """
    if ":" in bind or not Path(root).is_dir():
        return bind
    path = Path(bind)
    for candidate in (path, *path.parents):
        if str(candidate) == "/":
            break
        if (Path(root) / str(candidate).lstrip("/")).is_dir():
            return str(candidate)
    return bind


def _podman(*args: str, timeout: int = 120) -> str:
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise DeepRCError(f"`podman {' '.join(args)}` failed: {proc.stderr.strip()[-800:]}. "
                          "Fix: check that the image exists (`podman images`) and that podman works as this user.")
    return proc.stdout


def image_id(tag: str) -> str:
    return _podman("image", "inspect", "--format", "{{.Id}}", tag).strip()


def unpack(tag: str, dest: str | Path, mount_points: Sequence[str] = (), timeout: int = 1800) -> Path:
    """Unpack the podman image `tag` into the directory `dest` for ch-run (kept when already there).

    Writes the image's environment to ch/environment and creates `mount_points` inside it. The
    directory is filled beside `dest` and renamed into place, so a killed unpack leaves no half image.
    """
    dest = Path(dest)
    ident = image_id(tag)
    marker = dest / MARKER
    if marker.is_file() and json.loads(marker.read_text()).get("id") == ident:
        _mount_points(dest, mount_points)
        return dest
    if shutil.which("podman") is None:
        raise DeepRCError("unpacking an image for Charliecloud needs podman (to export the built image). "
                          "Fix: install podman, or convert the image with `ch-convert` yourself.")
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    cid = _podman("create", tag, "true").strip()
    try:
        export = subprocess.Popen(["podman", "export", cid], stdout=subprocess.PIPE)
        tar = subprocess.run(["tar", "-C", str(partial), "-xf", "-"], stdin=export.stdout, capture_output=True,
                             timeout=timeout)
        export.wait(timeout=60)
        if export.returncode or tar.returncode:
            raise DeepRCError(f"exporting {tag} into {partial} failed (podman export {export.returncode}, tar "
                              f"{tar.returncode}: {tar.stderr.decode(errors='replace')[-500:]}). "
                              f"Fix: check the free space under {partial.parent}.")
    finally:
        _podman("rm", "-f", cid)
    envs = _podman("image", "inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", tag)
    (partial / "ch").mkdir(exist_ok=True)
    (partial / "ch" / "environment").write_text("".join(line + "\n" for line in envs.splitlines() if "=" in line))
    (partial / MARKER).write_text(json.dumps({"ref": tag, "id": ident}))
    _mount_points(partial, mount_points)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(partial, dest)
    return dest


def _mount_points(root: Path, paths: Sequence[str]) -> None:
    for p in paths:
        target = root / str(expand(p)).split(":")[-1].lstrip("/")
        target.mkdir(parents=True, exist_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m deeprc.runtimes.charliecloud")
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("unpack", help="unpack a podman image into a directory for ch-run")
    up.add_argument("tag")
    up.add_argument("dest")
    up.add_argument("--mount-point", action="append", default=[], help="a bind target to create in the image")
    args = ap.parse_args(argv)
    try:
        where = unpack(args.tag, args.dest, args.mount_point)
    except DeepRCError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"unpacked {args.tag} into {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
