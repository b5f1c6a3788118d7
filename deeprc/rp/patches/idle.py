"""Idle polling: an idle pilot's scheduler, queue bridges and components wait on events, not on timers.

Groups ``sched`` (:func:`cap_sched_sleep`) and ``queue`` (:func:`event_driven_queue`,
:func:`bounded_component_waits`); see :mod:`deeprc.rp.patches`. Standard library only.
"""

from __future__ import annotations

import time as _time
import types

from .common import Patch, say, time_with

SCHED = "radical.pilot.agent.scheduler.base"
QUEUE = "radical.utils.zmq.queue"
COMPONENT = "radical.pilot.utils.component"
IDLE_POLL_MS = 200  # a held-open bridge wakes this often to check for termination
INPUT_WAIT_MS = 20  # a component's work loop waits this long on its queue before checking for termination
MULTI_INPUT_WAIT_MS = 5  # a component reading several queues in turn waits this long on each


def cap_sched_sleep(cap: float) -> Patch:
    """The agent scheduler's fixed 0.1 s sleep after an empty loop, capped at `cap` seconds."""
    def patch(module: types.ModuleType) -> None:
        if getattr(module, "time", None) is _time:
            module.time = time_with(lambda seconds: _time.sleep(min(seconds, cap)))  # type: ignore[attr-defined]
            say(f"{SCHED} idle sleep capped at {cap:g} s")
    return patch


def event_driven_queue(module: types.ModuleType) -> None:
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
    say(f"{QUEUE} bridges hold requests open")


def bounded_component_waits(module: types.ModuleType) -> None:
    """Bound a component's wait on its queues, so that its work loop still sees a stop request in time."""
    base = getattr(module, "BaseComponent", None)
    if base is None or not hasattr(base, "register_input"):
        return
    register = base.register_input

    def register_input(self, *args, **kwargs):  # noqa: ANN001, ANN202
        out = register(self, *args, **kwargs)
        inputs = getattr(self, "_inputs", {})
        for entry in inputs.values():
            entry["queue"]._deeprc_wait_ms = MULTI_INPUT_WAIT_MS if len(inputs) > 1 else INPUT_WAIT_MS
        return out

    base.register_input = register_input
