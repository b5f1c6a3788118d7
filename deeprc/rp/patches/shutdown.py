"""Shutdown: a stopping component finalizes, a subscriber stops without waiting out its poll.

Group ``queue`` (:func:`finalize_before_exit`) and ``start`` (:func:`quick_unsubscribe`); see
:mod:`deeprc.rp.patches`. Standard library only.
"""

from __future__ import annotations

import types

PUBSUB = "radical.utils.zmq.pubsub"
FINALIZE_WAIT_S = 3.0  # a stopping component waits this long for its work thread to finalize


def finalize_before_exit(module: types.ModuleType) -> None:
    """Let a component's work thread finalize before its process exits."""
    import threading

    base = getattr(module, "BaseComponent", None)
    if base is None or not hasattr(base, "wait"):
        return
    wait = base.wait

    def wait_for_finalize(self):  # noqa: ANN001, ANN202
        # RP's component process exits as soon as `wait` returns, and its work thread's finalizer
        # (which e.g. marks the pilot CANCELED on the client) only runs if that thread got there first
        wait(self)
        thread = getattr(self, "_thread", None)
        if isinstance(thread, threading.Thread) and thread is not threading.current_thread():
            thread.join(timeout=FINALIZE_WAIT_S)

    base.wait = wait_for_finalize


def quick_unsubscribe(module: types.ModuleType) -> None:
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
