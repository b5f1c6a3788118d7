"""What of a site this host offers: scheduler and launcher commands, modules, runtime, image, GPUs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

from deeprc.runtimes import get_runtime
from deeprc.schedulers import get_scheduler
from deeprc.sites.schema import Site, is_image_file



def on_this_site(site: Site) -> bool:
    """This host matches the site's hostname patterns (or, without patterns, has its scheduler)."""
    import fnmatch
    import socket

    if site.hostnames:
        names = {socket.gethostname(), socket.getfqdn()}
        return any(fnmatch.fnmatch(h, p) for h in names for p in site.hostnames)
    commands = get_scheduler(site.scheduler).commands
    return not commands or bool(shutil.which(commands[0]))


def probe(site: Site) -> Iterator[tuple[str, bool | None, str]]:
    """(item, ok, detail) rows; ok None means 'not on this host' (expected off-site), False a real failure."""
    on_site = on_this_site(site)
    for cmd in get_scheduler(site.scheduler).commands:
        path = shutil.which(cmd)
        yield f"scheduler command {cmd}", bool(path) or None, path or "not on PATH (not on this site?)"
    launcher = {"flux": "flux", "local": ""}.get(site.launcher, site.launcher)
    if launcher:
        path = shutil.which(launcher) or (str(Path(os.sys.executable).parent / launcher) if (Path(os.sys.executable).parent / launcher).exists() else None)
        yield f"launcher {launcher}", True if path else (False if on_site else None), path or "not on PATH"
    if site.modules:
        has_module = bool(os.environ.get("LMOD_CMD") or os.environ.get("MODULESHOME"))
        if not has_module:
            yield "modules", None, "no environment-modules/Lmod here"
        else:
            for m in site.modules:
                r = subprocess.run(["bash", "-lc", f"module is-avail {__import__('shlex').quote(m)}"], capture_output=True, timeout=60)
                yield f"module {m}", r.returncode == 0, "available" if r.returncode == 0 else "not available"
    rt = site.container.runtime
    if rt != "none":
        path = shutil.which(get_runtime(rt).program)
        yield f"runtime {rt}", True if path else (False if on_site else None), path or "not on PATH"
        image = site.container.image or ""
        if is_image_file(image):
            p = Path(os.path.expandvars(os.path.expanduser(image)))
            yield f"image {image}", p.exists() or (False if on_site else None), "present" if p.exists() else "file not found"
        else:
            yield f"image {image}", None, "registry/tag image (pulled at run time)"
    part = site.partition()[1]
    if part.gpus_per_node:
        tool = "rocm-smi" if part.gpu_vendor == "amd" else "nvidia-smi"
        path = shutil.which(tool)
        if path:
            r = subprocess.run([tool, "-L"] if tool == "nvidia-smi" else [tool], capture_output=True, text=True, timeout=60)
            n = sum(1 for line in r.stdout.splitlines() if line.startswith("GPU")) if tool == "nvidia-smi" else None
            yield f"GPUs ({tool})", r.returncode == 0, f"{n} visible" if n is not None else "answers"
        else:
            yield f"GPUs ({tool})", None, "no GPU tool here (login node or another host)"
    for key in ("scratch", "image_cache", "runs"):
        val = getattr(site.filesystems, key)
        if val:
            p = Path(os.path.expandvars(os.path.expanduser(val)))
            yield f"filesystem {key}", True if p.is_dir() else (False if on_site else None), str(p)
