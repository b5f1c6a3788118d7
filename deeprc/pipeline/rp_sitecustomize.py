"""Start-up hook for Radical Pilot's agent processes (copied as ``sitecustomize.py`` into a folder
that the pilot's ``pre_bootstrap_0`` puts first on ``PYTHONPATH``; see :mod:`deeprc.pipeline.pilot`).

RP 1.103's agent scheduler sleeps a fixed 0.1 s whenever a loop found nothing to do
(``agent/scheduler/base.py``: ``time.sleep(0.1)  # FIXME: configurable``). A task arriving while it
sleeps waits for the rest of that sleep: that was about 70 ms of the 111 ms median dispatch latency of
a function task on a warm raptor worker. This hook gives that one module a ``time`` whose ``sleep`` is
capped at ``DEEPRC_RP_SCHED_SLEEP`` seconds (default 0.002); the loop's own blocking queue reads
(1-10 ms timeouts) keep it from spinning. Nothing else in the process changes, and when RP's
scheduler has no such module-level ``time`` the hook does nothing.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import time as _time
import types

_TARGET = "radical.pilot.agent.scheduler.base"


def _capped_time(cap: float) -> types.ModuleType:
    shim = types.ModuleType("time")
    shim.__dict__.update(_time.__dict__)
    shim.sleep = lambda seconds: _time.sleep(min(seconds, cap))  # type: ignore[attr-defined]
    return shim


class _CapSchedulerSleep(importlib.abc.MetaPathFinder):
    def __init__(self, cap: float) -> None:
        self.cap = cap

    def find_spec(self, name, path, target=None):  # noqa: ANN001 - importlib's signature
        if name != _TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run, cap = spec.loader.exec_module, self.cap

        def exec_module(module: types.ModuleType) -> None:
            run(module)
            if getattr(module, "time", None) is _time:
                module.time = _capped_time(cap)  # type: ignore[attr-defined]
                print(f"deeprc: {_TARGET} idle sleep capped at {cap:g} s", file=sys.stderr, flush=True)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install() -> None:
    """Put the finder in front of the import system (once)."""
    try:
        cap = float(os.environ.get("DEEPRC_RP_SCHED_SLEEP", "0.002"))
    except ValueError:
        return
    if cap < 0.1 and not any(isinstance(f, _CapSchedulerSleep) for f in sys.meta_path):
        sys.meta_path.insert(0, _CapSchedulerSleep(cap))


if __name__ == "sitecustomize":
    install()
