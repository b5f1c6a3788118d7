"""Build inputs the image never keeps: site wheels and CA certificates staged into containers/inputs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from deeprc.errors import DeepRCError


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
