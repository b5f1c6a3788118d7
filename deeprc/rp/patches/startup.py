"""Start-up speed: bridges and components start side by side, shorter settle sleeps, no login shell.

Group ``start``; see :mod:`deeprc.rp.patches`. Standard library only.
"""

from __future__ import annotations

import time as _time
import types

from .common import Patch, time_with

CMGR = "radical.pilot.utils.component_manager"
LAUNCHING = "radical.pilot.pmgr.launching.base"
RAPTOR = ("radical.pilot.raptor.master", "radical.pilot.raptor.worker", "radical.pilot.raptor.worker_mpi")
SETTLE_S = 0.2  # the raptor master's and workers' "let ZMQ settle" sleeps (RP: 1 s)


def parallel_start(module: types.ModuleType) -> None:
    """Start a component manager's bridges (and its components) side by side, not one after another.

    ``ComponentManager.start_bridges``/``start_components`` run ``radical-pilot-bridge``/``-component``
    through ``ru.sh_callout`` one at a time, and each call returns only once its process is up (about
    0.2-0.4 s each: seven agent bridges took 1.8 s). The module gets a ``ru`` whose ``sh_callout`` starts
    those two commands in a thread and returns at once; ``_wait_startup``, which the methods call next,
    already waits for every process's startup message, and now also fails as soon as one start failed.
    """
    import threading

    ru, cmgr = getattr(module, "ru", None), getattr(module, "ComponentManager", None)
    if ru is None or cmgr is None or not hasattr(ru, "sh_callout") or not hasattr(cmgr, "_wait_startup"):
        return
    failed: list[str] = []

    def start(cmd: str, kwargs: dict) -> None:
        out, err, ret = ru.sh_callout(cmd, **kwargs)
        if ret:
            failed.append(f"{cmd}: exit {ret}: {err or out}")

    def sh_callout(cmd, *args, **kwargs):  # noqa: ANN001, ANN202
        if isinstance(cmd, str) and not args and cmd.split(" ", 1)[0] in ("radical-pilot-bridge", "radical-pilot-component"):
            threading.Thread(target=start, args=(cmd, kwargs), daemon=True).start()
            return "", "", 0
        return ru.sh_callout(cmd, *args, **kwargs)

    proxy = types.ModuleType(ru.__name__)
    proxy.__dict__.update(ru.__dict__)
    proxy.sh_callout = sh_callout  # type: ignore[attr-defined]
    wait_startup = cmgr._wait_startup

    def _wait_startup(self, uids, timeout):  # noqa: ANN001, ANN202
        deadline = _time.time() + timeout
        while True:
            if failed:
                raise RuntimeError("bridge or component startup failed: " + "; ".join(failed))
            try:
                return wait_startup(self, uids, timeout=min(1.0, max(0.0, deadline - _time.time())))
            except RuntimeError:
                if _time.time() >= deadline:
                    raise

    module.ru = proxy  # type: ignore[attr-defined]
    cmgr._wait_startup = _wait_startup


def no_login_shell(module: types.ModuleType) -> None:
    """The pilot's bootstrap runs as ``bash bootstrap_0.sh``, not ``bash -l bootstrap_0.sh``."""
    cls = module.PMGRLaunchingComponent
    prepare = cls._prepare_pilot

    def _prepare_pilot(self, *args, **kwargs):  # noqa: ANN001, ANN202 - RP's method
        out = prepare(self, *args, **kwargs)
        pilot = args[2] if len(args) > 2 else kwargs.get("pilot")
        jd = pilot.get("jd_dict") if isinstance(pilot, dict) else None
        argv = list(getattr(jd, "arguments", None) or [])
        if argv[:1] == ["-l"] and str(argv[1:2]).endswith("bootstrap_0.sh']"):
            jd.arguments = argv[1:]
        return out

    cls._prepare_pilot = _prepare_pilot


def settle(seconds: float) -> Patch:
    """Shorten the raptor master's and workers' fixed 1 s "let ZMQ settle" sleeps (sleeps of other
    lengths, e.g. heartbeats, keep theirs)."""
    def patch(module: types.ModuleType) -> None:
        if getattr(module, "time", None) is _time:
            module.time = time_with(lambda s: _time.sleep(seconds if s == 1 else s))  # type: ignore[attr-defined]
    return patch
