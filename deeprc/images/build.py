"""Running a BuildPlan: each command with a progress line and a log, then the built image's record."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

from deeprc.errors import DeepRCError
from deeprc.images.plan import BuildPlan

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
    """Bytes as B, KiB, MiB or GiB."""
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
