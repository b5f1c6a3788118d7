"""The processes a pilot left running under its folder (e.g. MPI raptor workers), and stopping them."""

from __future__ import annotations

import os
from pathlib import Path


def own_pids(base: Path) -> list[int]:
    """Processes whose working folder or command line lies under `base` (this pilot's own)."""
    import psutil

    mine, me, prefix = [], os.getpid(), str(base)
    for proc in psutil.process_iter(["pid", "cwd", "cmdline"]):
        info = proc.info
        if info["pid"] == me:
            continue
        cmd = " ".join(info["cmdline"] or [])
        if (info["cwd"] or "").startswith(prefix) or prefix in cmd:
            mine.append(info["pid"])
    return mine


def stop_leftovers(base: Path, grace: float = 2.0) -> None:
    """SIGTERM, then SIGKILL, the processes RP left running under `base` (e.g. MPI raptor workers)."""
    import psutil

    procs = []
    for pid in own_pids(base):
        try:
            procs.append(psutil.Process(pid))
        except psutil.Error:
            pass
    for stop in (psutil.Process.terminate, psutil.Process.kill):
        for p in procs:
            try:
                stop(p)
            except psutil.Error:
                pass
        _, procs = psutil.wait_procs(procs, timeout=grace)
        if not procs:
            return


def alive(pid: int) -> bool:
    """Process `pid` exists and is not a zombie."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
