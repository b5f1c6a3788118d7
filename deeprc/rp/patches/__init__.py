"""DeepRC's patches to Radical Pilot's fixed costs, by purpose (:mod:`.idle`, :mod:`.startup`,
:mod:`.shutdown`), and :func:`install`, which applies them as their modules are imported.

They run in the client (:class:`deeprc.rp.session.Pilot` calls :func:`install`) and, from a copy in the
hooks folder that the pilot puts first on ``PYTHONPATH`` (:mod:`deeprc.rp.hooks`), in RP's agent, its
raptor master and workers (in the site's image too), and the client's bridges and components. So this
package and :mod:`deeprc.rp.versions` use only the standard library and relative imports. Written against
RP 1.103 / radical.utils 1.103 (:data:`deeprc.rp.versions.TESTED`); each patch is applied when its module
is first imported, and skipped when the module does not look as expected.

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

import os
import sys
import types
from typing import Callable

from ..versions import installed_versions, untested
from .common import Patch, say
from .idle import COMPONENT, QUEUE, SCHED, bounded_component_waits, cap_sched_sleep, event_driven_queue
from .importhook import PatchOnImport, apply
from .shutdown import PUBSUB, finalize_before_exit, quick_unsubscribe
from .startup import CMGR, LAUNCHING, RAPTOR, SETTLE_S, no_login_shell, parallel_start, settle

GROUPS = ("sched", "queue", "start")
_warned = False


def wanted_groups() -> set[str]:
    """The groups ``DEEPRC_RP_PATCHES`` names (default all; ``off`` or ``none``: none)."""
    want = os.environ.get("DEEPRC_RP_PATCHES", ",".join(GROUPS)).strip().lower()
    return set() if want in ("off", "none", "") else {g.strip() for g in want.split(",")} - {""}


def _both(first: Patch, second: Patch) -> Patch:
    """One patch for a module two purposes patch (a module is patched once)."""
    def patch(module: types.ModuleType) -> None:
        first(module)
        second(module)
    return patch


def patches(versions: dict[str, str] | None = None, warn: Callable[[str], None] | None = None,
            ) -> dict[str, Patch]:
    """module name -> patch, for the groups ``DEEPRC_RP_PATCHES`` asks for (see the module docstring);
    none when the installed RP (or `versions`) is outside the tested releases (`warn` gets why, once)."""
    global _warned
    groups = wanted_groups()
    out: dict[str, Patch] = {}
    if not groups:
        return out
    why = untested(installed_versions() if versions is None else versions)
    if why:
        if not _warned:
            _warned = True
            (warn or say)(why)
        return out
    if "sched" in groups:
        try:
            cap = float(os.environ.get("DEEPRC_RP_SCHED_SLEEP", "0.002"))
        except ValueError:  # the client refuses to start a pilot with it (deeprc.settings.check_rp_patches)
            cap = 0.1
        if cap < 0.1:
            out[SCHED] = cap_sched_sleep(cap)
    if "queue" in groups:
        out[QUEUE] = event_driven_queue
        out[COMPONENT] = _both(bounded_component_waits, finalize_before_exit)
    if "start" in groups:
        out[CMGR] = parallel_start
        out[PUBSUB] = quick_unsubscribe
        out.update({name: settle(SETTLE_S) for name in RAPTOR})
        if os.environ.get("DEEPRC_RP_LOGIN_SHELL", "0") != "1":
            out[LAUNCHING] = no_login_shell
    return out


def install(warn: Callable[[str], None] | None = None) -> None:
    """Patch the modules this process already imported, and the others when they are imported (once);
    `warn` gets the one line saying RP runs unpatched (an untested version)."""
    todo = patches(warn=warn)
    for name, patch in todo.items():
        if name in sys.modules:
            apply(name, sys.modules[name], patch)
    if todo and not any(isinstance(f, PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, PatchOnImport(todo))
