"""What the patch modules share: where they speak, and a module's own `time` with another `sleep`.

Standard library only (the patches run inside RP's processes, from the hooks folder: deeprc.rp.hooks).
"""

from __future__ import annotations

import sys
import time as _time
import types
from typing import Callable

HOOKS_PACKAGE = "deeprc_rp_hooks"  # the patches' package name in the hooks folder (deeprc.rp.hooks)
Patch = Callable[[types.ModuleType], None]


def say(msg: str) -> None:
    """A line on stderr, only in RP's own processes (their .err files), not in the client's terminal."""
    if __name__.partition(".")[0] == HOOKS_PACKAGE:
        print(f"deeprc: {msg}", file=sys.stderr, flush=True)


def time_with(sleep: Callable[[float], None]) -> types.ModuleType:
    """A stand-in for one module's ``time``: the real one, with another ``sleep``."""
    shim = types.ModuleType("time")
    shim.__dict__.update(_time.__dict__)
    shim.sleep = sleep  # type: ignore[attr-defined]
    return shim
