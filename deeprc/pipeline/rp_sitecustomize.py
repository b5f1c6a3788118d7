"""Start-up hook that trims Radical Pilot's fixed costs (copied as ``sitecustomize.py`` into a folder
that the pilot puts first on ``PYTHONPATH``: the agent's via ``pre_bootstrap_0``, the client's bridges
and components via the environment they are spawned with, the client itself by :func:`install`; see
:mod:`deeprc.pipeline.pilot`). Written against RP 1.103 / radical.utils 1.103; each patch is applied
when its module is first imported, and skipped when the module does not look as expected.

``DEEPRC_RP_PATCHES`` picks the groups (default ``sched,queue,start``; ``off`` for none):

* ``sched``: the agent scheduler sleeps a fixed 0.1 s whenever its loop found nothing to do
  (``# FIXME: configurable``), about 70 ms of a 111 ms dispatch latency. Capped at
  ``DEEPRC_RP_SCHED_SLEEP`` seconds (default 0.002).
* ``queue``: every queue bridge answers a consumer's request at once, with an empty list when it holds
  nothing, and loops on two 10 ms polls and a 10 ms sleep, so each idle consumer and its bridge
  ping-pong: ~30 such processes took half a core of a 2-core machine while the pilot idled, and every
  hop waited up to 10 ms. Here the bridge keeps a request open (a ROUTER socket, the same protocol to
  RP's REQ consumers) until it has messages for it and sleeps in one poll on both sockets. A
  component's work loop waits at most 20 ms on its queue (5 ms on each of several) so that it still
  sees a stop request as soon as RP expects, and a stopping component lets its work thread finalize.
* ``start``: component managers start their bridges and components one after another, each start
  returning only once the process is up (7 agent bridges: 1.8 s); here they start side by side. The
  raptor master's and workers' fixed 1 s "let ZMQ settle" sleeps become 0.2 s, and a subscriber
  stops without waiting out its listener's 500 ms poll (closing a task manager took 1.5 s). The
  pilot's bootstrap runs as ``bash bootstrap_0.sh`` instead of ``bash -l``, so the user's login files
  (``~/.profile`` -> ``~/.bashrc``: pyenv, conda init) do not run on every pilot start (a stale
  ``pyenv rehash`` lock cost every start 60 s); sites that load modules keep the login shell
  (``DEEPRC_RP_LOGIN_SHELL=1``, set by the pilot).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import time as _time
import types
from typing import Callable

_SCHED = "radical.pilot.agent.scheduler.base"
_QUEUE = "radical.utils.zmq.queue"
_PUBSUB = "radical.utils.zmq.pubsub"
_COMPONENT = "radical.pilot.utils.component"
_CMGR = "radical.pilot.utils.component_manager"
_LAUNCHING = "radical.pilot.pmgr.launching.base"
_RAPTOR = ("radical.pilot.raptor.master", "radical.pilot.raptor.worker", "radical.pilot.raptor.worker_mpi")
IDLE_POLL_MS = 200  # a held-open bridge wakes this often to check for termination
INPUT_WAIT_MS = 20  # a component's work loop waits this long on its queue before checking for termination
MULTI_INPUT_WAIT_MS = 5  # a component reading several queues in turn waits this long on each
SETTLE_S = 0.2  # the raptor master's and workers' "let ZMQ settle" sleeps (RP: 1 s)
FINALIZE_WAIT_S = 3.0  # a stopping component waits this long for its work thread to finalize


def _say(msg: str) -> None:
    """A line on stderr, only in RP's own processes (their .err files), not in the client's terminal."""
    if __name__ == "sitecustomize":
        print(f"deeprc: {msg}", file=sys.stderr, flush=True)


def warn_line(msg: str) -> None:
    """The client's one warning line on stderr."""
    print(f"warning: {msg}", file=sys.stderr, flush=True)


def _time_with(sleep: Callable[[float], None]) -> types.ModuleType:
    """A stand-in for one module's ``time``: the real one, with another ``sleep``."""
    shim = types.ModuleType("time")
    shim.__dict__.update(_time.__dict__)
    shim.sleep = sleep  # type: ignore[attr-defined]
    return shim


def _cap_sched_sleep(cap: float) -> Callable[[types.ModuleType], None]:
    def patch(module: types.ModuleType) -> None:
        if getattr(module, "time", None) is _time:
            module.time = _time_with(lambda seconds: _time.sleep(min(seconds, cap)))  # type: ignore[attr-defined]
            _say(f"{_SCHED} idle sleep capped at {cap:g} s")
    return patch


def _event_driven_queue(module: types.ModuleType) -> None:
    """Give ``Queue`` a bridge that holds consumers' requests open, and ``Getter`` a bounded wait."""
    import collections
    import threading

    queue_cls, getter_cls = getattr(module, "Queue", None), getattr(module, "Getter", None)
    zmq = getattr(module, "zmq", None)
    needed = ("zmq_bind", "no_intr", "as_string", "to_msgpack", "from_msgpack", "_LINGER_TIMEOUT", "_HIGH_WATER_MARK")
    if queue_cls is None or getter_cls is None or zmq is None or not all(hasattr(module, n) for n in needed) \
            or not hasattr(queue_cls, "_bridge_work") or not hasattr(getter_cls, "get_nowait"):
        return
    m = module

    def _bridge_initialize(self) -> None:  # noqa: ANN001 - RP's method
        self._log.info("start bridge %s (deeprc: requests held open)", self._uid)
        self._lock = threading.Lock()
        self._ctx = zmq.Context()
        self._put = self._ctx.socket(zmq.PULL)
        self._put.linger, self._put.hwm = m._LINGER_TIMEOUT, m._HIGH_WATER_MARK
        self._addr_put = m.zmq_bind(self._put)
        self._get = self._ctx.socket(zmq.ROUTER)  # a REQ peer sees a REP; replies may come later
        self._get.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a reply to a gone consumer fails, not vanishes
        self._get.linger, self._get.hwm = m._LINGER_TIMEOUT, m._HIGH_WATER_MARK
        self._addr_get = m.zmq_bind(self._get)
        self._poll_all = zmq.Poller()
        self._poll_all.register(self._put, zmq.POLLIN)
        self._poll_all.register(self._get, zmq.POLLIN)

    def _bridge_work(self) -> None:  # noqa: ANN001
        self.nin, self.nout, self.last = 0, 0, 0
        buf: dict[str, list] = {}
        waiting: dict[str, collections.deque] = {}

        def recv(sock):  # noqa: ANN001, ANN202 - the next waiting message, or None
            try:
                with self._lock:
                    return sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return None

        try:
            while not self._term.is_set():
                ready = dict(m.no_intr(self._poll_all.poll, timeout=IDLE_POLL_MS))
                while self._put in ready and (data := recv(self._put)) is not None:
                    if len(data) != 2:
                        raise RuntimeError("%d frames unsupported" % len(data))
                    msgs = m.from_msgpack(data[1])
                    buf.setdefault(m.as_string(m.from_msgpack(data[0])), []).extend(msgs)
                    self.nin += len(msgs)
                while self._get in ready and (frames := recv(self._get)) is not None:
                    qname = m.as_string(frames[-1]) or "default"  # [consumer id, b"", qname]
                    waiting.setdefault(qname, collections.deque()).append(frames[0])
                for qname, peers in waiting.items():
                    pending = buf.get(qname)
                    while peers and pending:
                        msgs = pending[:self._bulk_size]
                        try:
                            self._get.send_multipart([peers.popleft(), b"", m.to_msgpack(qname), m.to_msgpack(msgs)])
                        except zmq.ZMQError:
                            continue  # that consumer is gone: the messages stay for the next one
                        del pending[:len(msgs)]
                        self.nout += len(msgs)
                        self.last = _time.time()
        except Exception:
            self._log.exception("bridge failed")

    get_nowait = getter_cls.get_nowait

    def bounded_get_nowait(self, qname=None, timeout=None):  # noqa: ANN001
        if timeout is None and isinstance(qname, int):  # RP's old `get_nowait(timeout)` form
            qname, timeout = None, qname
        wait = getattr(self, "_deeprc_wait_ms", None)
        if wait is not None and timeout is not None:
            timeout = min(timeout, wait)
        return get_nowait(self, qname=qname, timeout=timeout)

    queue_cls._bridge_initialize = _bridge_initialize
    queue_cls._bridge_work = _bridge_work
    getter_cls.get_nowait = bounded_get_nowait
    _say(f"{_QUEUE} bridges hold requests open")


def _component_patches(module: types.ModuleType) -> None:
    """Bound a component's wait on its queues; let it finalize before its process exits."""
    import threading

    base = getattr(module, "BaseComponent", None)
    if base is None or not hasattr(base, "register_input") or not hasattr(base, "wait"):
        return
    register, wait = base.register_input, base.wait

    def register_input(self, *args, **kwargs):  # noqa: ANN001, ANN202
        out = register(self, *args, **kwargs)
        inputs = getattr(self, "_inputs", {})
        for entry in inputs.values():
            entry["queue"]._deeprc_wait_ms = MULTI_INPUT_WAIT_MS if len(inputs) > 1 else INPUT_WAIT_MS
        return out

    def wait_for_finalize(self):  # noqa: ANN001, ANN202
        # RP's component process exits as soon as `wait` returns, and its work thread's finalizer
        # (which e.g. marks the pilot CANCELED on the client) only runs if that thread got there first
        wait(self)
        thread = getattr(self, "_thread", None)
        if isinstance(thread, threading.Thread) and thread is not threading.current_thread():
            thread.join(timeout=FINALIZE_WAIT_S)

    base.register_input = register_input
    base.wait = wait_for_finalize


def _quick_unsubscribe(module: types.ModuleType) -> None:
    """``Subscriber.stop`` joins its listener thread, which polls with a 500 ms timeout: closing a task
    manager (three subscribers) took 1.5 s. The listener is told to stop and left to finish on its own."""
    import threading

    sub = getattr(module, "Subscriber", None)
    if sub is None or not hasattr(sub, "_stop_listener"):
        return

    def _stop_listener(self, force=False):  # noqa: ANN001, ANN202
        if force or not self._callbacks:
            with self._lock:
                if self._thread:
                    self._term.set()  # the listener got this event: it ends at its next poll
                    self._thread.join(timeout=0.02)
                    self._term = threading.Event()  # a listener started later gets a fresh one
                    self._thread = None

    sub._stop_listener = _stop_listener


def _parallel_start(module: types.ModuleType) -> None:
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


def _no_login_shell(module: types.ModuleType) -> None:
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


def _settle(seconds: float) -> Callable[[types.ModuleType], None]:
    """Shorten the raptor master's and workers' fixed 1 s "let ZMQ settle" sleeps (sleeps of other
    lengths, e.g. heartbeats, keep theirs)."""
    def patch(module: types.ModuleType) -> None:
        if getattr(module, "time", None) is _time:
            module.time = _time_with(lambda s: _time.sleep(seconds if s == 1 else s))  # type: ignore[attr-defined]
    return patch


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Run a patch on a module right after its own code ran (first import)."""

    def __init__(self, patches: dict[str, Callable[[types.ModuleType], None]]) -> None:
        self.patches = patches

    def find_spec(self, name, path, target=None):  # noqa: ANN001 - importlib's signature
        patch = self.patches.get(name)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module: types.ModuleType) -> None:
            run(module)
            _apply(name, module, patch)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


GROUPS = ("sched", "queue", "start")
# The releases the patches were written and tested against (lower bound inclusive, upper exclusive);
# pyproject.toml pins the same range. Outside it DeepRC runs RP unpatched and says so once.
TESTED = {"radical.pilot": ((1, 103), (1, 104)), "radical.utils": ((1, 103), (1, 104))}
_warned = False


def _release(version: str) -> tuple[int, ...]:
    """(major, minor) of a version string such as '1.103.2' or '1.104.0rc1' (() when unreadable)."""
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(c for c in piece if c.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            return ()
        parts.append(int(digits))
    return tuple(parts)


def installed_versions() -> dict[str, str]:
    """The installed version of each package the patches touch ('' when not installed)."""
    from importlib import metadata

    out = {}
    for name in TESTED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = ""
    return out


def untested(versions: dict[str, str]) -> str:
    """Why the patches must not apply to `versions` ('' when every package is in its tested range)."""
    bad = []
    for name, (low, high) in TESTED.items():
        got = versions.get(name, "")
        if not (low <= _release(got) < high):
            bad.append(f"{name} {got or 'not installed'}")
    if not bad:
        return ""
    span = ", ".join(f"{n} {'.'.join(map(str, lo))}.x" for n, (lo, _) in TESTED.items())
    return (f"DeepRC's Radical Pilot patches (deeprc/pipeline/rp_sitecustomize.py) were tested on {span}; "
            f"found {', '.join(bad)}: running Radical Pilot unpatched (slower pilot start-up and dispatch, "
            f"more idle CPU). Fix: install the tested range (pip install 'radical.pilot>=1.103,<1.104'), "
            "or set DEEPRC_RP_PATCHES=off to silence this line.")


def wanted_groups() -> set[str]:
    """The groups ``DEEPRC_RP_PATCHES`` names (default all; ``off`` or ``none``: none)."""
    want = os.environ.get("DEEPRC_RP_PATCHES", ",".join(GROUPS)).strip().lower()
    return set() if want in ("off", "none", "") else {g.strip() for g in want.split(",")} - {""}


def patches(versions: dict[str, str] | None = None, warn: Callable[[str], None] | None = None,
            ) -> dict[str, Callable[[types.ModuleType], None]]:
    """module name -> patch, for the groups ``DEEPRC_RP_PATCHES`` asks for (see the module docstring);
    none when the installed RP (or `versions`) is outside :data:`TESTED` (`warn` gets why, once)."""
    global _warned
    groups = wanted_groups()
    out: dict[str, Callable[[types.ModuleType], None]] = {}
    if not groups:
        return out
    why = untested(installed_versions() if versions is None else versions)
    if why:
        if not _warned:
            _warned = True
            (warn or _say)(why)
        return out
    if "sched" in groups:
        try:
            cap = float(os.environ.get("DEEPRC_RP_SCHED_SLEEP", "0.002"))
        except ValueError:  # the client refuses to start a pilot with it (deeprc.pipeline.pilot)
            cap = 0.1
        if cap < 0.1:
            out[_SCHED] = _cap_sched_sleep(cap)
    if "queue" in groups:
        out[_QUEUE] = _event_driven_queue
        out[_COMPONENT] = _component_patches
    if "start" in groups:
        out[_CMGR] = _parallel_start
        out[_PUBSUB] = _quick_unsubscribe
        out.update({name: _settle(SETTLE_S) for name in _RAPTOR})
        if os.environ.get("DEEPRC_RP_LOGIN_SHELL", "0") != "1":
            out[_LAUNCHING] = _no_login_shell
    return out


def _apply(name: str, module: types.ModuleType, patch: Callable[[types.ModuleType], None]) -> None:
    if getattr(module, "_deeprc_patched", False):
        return
    try:
        patch(module)
        module._deeprc_patched = True  # type: ignore[attr-defined]
    except Exception as exc:  # never break RP: leave the module as it was written
        _say(f"{name} not patched: {exc!r}")


def install(warn: Callable[[str], None] | None = None) -> None:
    """Patch the modules this process already imported, and the others when they are imported (once);
    `warn` gets the one line saying RP runs unpatched (an untested version)."""
    todo = patches(warn=warn)
    for name, patch in todo.items():
        if name in sys.modules:
            _apply(name, sys.modules[name], patch)
    if todo and not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport(todo))


if __name__ == "sitecustomize":
    install()
