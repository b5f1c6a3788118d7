"""How a pilot lays out a scheduler's allocation, and what it says when its warm workers do not answer.

On a real (not oversubscribed) allocation of N nodes x C cores, Radical Pilot counts *slots*, not
cores: each node offers C slots for warm raptor worker ranks, C for executable stages and one for
the raptor master, so a stage that asks for every core of the allocation still fits beside the idle
runtime processes. DeepRC's own core budget (N x C) bounds what really runs at once
(docs/architecture.md, "Pilot on several nodes").
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from deeprc.errors import DeepRCError
from deeprc.pipeline.spec import Pipeline

if TYPE_CHECKING:
    from deeprc.sites.schema import Site

START_TIMEOUT_S = 300.0  # default bound on the warm worker's first answer (DEEPRC_PILOT_START_TIMEOUT)


def inside_allocation() -> bool:
    """This process runs inside a batch job of any registered scheduler (its job-id variable is set)."""
    from deeprc.schedulers import SCHEDULERS, get_scheduler

    return any(v in os.environ for v in (get_scheduler(n).job_id_var for n in SCHEDULERS if n != "local") if v)


@dataclass(frozen=True)
class Layout:
    """A scheduler allocation as the pilot uses it."""

    nodes: int
    cores_per_node: int  # real cores
    gpus_per_node: int = 0

    @property
    def cores(self) -> int:
        return self.nodes * self.cores_per_node

    @property
    def slots_per_node(self) -> int:
        """RP's cores per node: worker ranks + executable ranks + the raptor master."""
        return 2 * self.cores_per_node + 1

    def describe(self) -> str:
        gpus = f", {self.gpus_per_node} GPU(s) each" if self.gpus_per_node else ""
        return f"{self.nodes} node(s) x {self.cores_per_node} core(s){gpus} = {self.cores} cores"


def oversubscribed(site: Site) -> bool:
    """True where RP's slots already outnumber the real cores (local runs, or a site's `rp:` overrides)."""
    if site is None or getattr(site, "scheduler", "local") == "local":
        return True
    over = dict(getattr(site, "rp", None) or {})
    return bool(over.get("fake_resources") or (over.get("system_architecture") or {}).get("oversubscribe"))


def allocation(site: Site, cores: int | None = None) -> Layout:
    """The allocation this run is inside: nodes and cores per node from the scheduler's variables where it
    offers them (an `salloc -N2` without `--ntasks-per-node` holds one core per node, say), else from
    --cores and the site's default partition; GPUs per node from the partition."""
    from deeprc.schedulers import get_scheduler

    _, part = site.partition(None)
    sched = get_scheduler(site.scheduler)
    cpn = sched.allocated_cores_per_node(os.environ) or part.cores_per_node
    var = sched.node_count_var
    nodes = 0
    if var and os.environ.get(var, "").strip().isdigit():
        nodes = int(os.environ[var])
    elif cores:
        nodes = max(1, cores // cpn)
    return Layout(nodes=nodes or part.nodes, cores_per_node=cpn, gpus_per_node=part.gpus_per_node)


def agent_interface(site: Site) -> str | None:
    """The interface Radical Pilot's agent should advertise its bridges on: the one that routes to a node of
    the allocation other than this host (None: this host is the only node, or no route is known).

    RP otherwise takes the first of its preferred names (ib0, eth0, ...), which on a login node (`salloc`)
    or a node with several networks can be one the compute nodes cannot reach: the raptor master and
    workers then never register.
    """
    import socket

    from deeprc.comm.rendezvous import route_interface
    from deeprc.schedulers import get_scheduler

    me = socket.gethostname().split(".")[0]
    others = [n for n in get_scheduler(site.scheduler).allocated_nodes(os.environ) if n.split(".")[0] != me]
    return route_interface(others[0]) if others else None


def check_fits(pipe: Pipeline, layout: Layout) -> None:
    """Refuse, before the pilot starts, a stage that asks for more than the whole allocation."""
    for s in pipe.stages:
        need = s.ranks * s.cores_per_rank
        gpus = s.ranks * s.gpus_per_rank
        if need > layout.cores or gpus > layout.nodes * layout.gpus_per_node:
            what = f"{need} core(s)" if need > layout.cores else f"{gpus:g} GPU(s)"
            raise DeepRCError(
                f"{pipe.source or 'pipeline'}: field 'stages ({s.name}).ranks': stage '{s.name}' asks for {s.ranks} "
                f"rank(s) x {s.cores_per_rank} core(s) ({what}), but this pilot's allocation has {layout.describe()}. "
                f"Nothing was started. Fix: lower the stage's ranks (or cores_per_rank/gpus_per_rank), or submit with "
                f"more nodes (`launch --nodes {_nodes_for(need, gpus, layout)}`).")


def _nodes_for(cores: int, gpus: float, layout: Layout) -> int:
    by_cores = -(-cores // layout.cores_per_node)
    by_gpus = int(-(-gpus // layout.gpus_per_node)) if layout.gpus_per_node and gpus else 0
    return max(by_cores, by_gpus, layout.nodes + 1)


def worker_ranks(pipe: Pipeline, cores: int) -> int:
    """Warm worker ranks: the widest function stage, more if several fit side by side, at most `cores`."""
    py = [s.ranks for s in pipe.stages if not s.executable]
    if not py:
        return 1
    return min(cores, max(max(py), min(sum(py), cores)))


def start_timeout() -> float:
    """Seconds the warm worker may take to answer its first probe (`DEEPRC_PILOT_START_TIMEOUT`)."""
    raw = os.environ.get("DEEPRC_PILOT_START_TIMEOUT", "").strip()
    if not raw:
        return START_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise DeepRCError(
            f"environment variable DEEPRC_PILOT_START_TIMEOUT={raw!r} is not a positive number of seconds. Fix: set "
            f"it to how long the pilot's warm workers may take to start (default {START_TIMEOUT_S:g}), or unset it.")
    return value


_ERR = re.compile(r"(Error|Exception|error:|failed|Traceback|timed out)", re.I)
_EXC = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception)\b.*")


def _pilot_files(base: Path, session: str, pattern: str) -> list[Path]:
    """Files of this session's pilot sandbox under the pilot's base (earlier sessions' sandboxes stay beside it)."""
    return sorted(base.glob(f"sandbox/**/{session}/pilot.*/{pattern}"))


def raptor_failure(base: Path, session: str) -> str:
    """The exception a raptor master or worker logged (a task its ranks could not start, say), or ''."""
    for f in _pilot_files(base, session, "raptor.*.log"):
        try:
            lines = f.read_text(errors="replace").splitlines()
        except OSError:
            continue
        if any(" : ERROR " in ln for ln in lines):
            exc = [ln.strip() for ln in lines if _EXC.match(ln.strip())]
            return f"{f.name}: {(exc or [ln for ln in lines if ' : ERROR ' in ln])[-1].strip()[-240:]}"
    return ""


def sandbox_errors(base: Path, session: str, limit: int = 4) -> list[str]:
    """The last error lines in the raptor master/worker logs and the agent's stderr under the pilot sandbox."""
    failure = raptor_failure(base, session)
    found: list[str] = [failure] if failure else []
    patterns = ("raptor.*/*.err", "raptor.*/*.out", "agent_0.err", "bootstrap_0.err")
    for pat in patterns:
        for f in _pilot_files(base, session, pat):
            try:
                lines = f.read_text(errors="replace").splitlines()
            except OSError:
                continue
            hits = [ln.strip() for ln in lines if _ERR.search(ln) and not ln.startswith("deeprc:")]
            if hits:
                found.append(f"{f.name}: {hits[-1][-240:]}")
    return found[:limit]


def stall_message(*, waited_s: float, ranks: int, per_node: int, layout: Layout | None, states: dict[str, str],
                  errors: list[str], stages: list[str], base: Path, ended: str = "") -> str:
    """One paragraph: what the pilot waited for, what Radical Pilot reported, and the fix."""
    where = f" on an allocation of {layout.describe()}" if layout else ""
    saw = ", ".join(f"{uid} {st}" for uid, st in states.items()) or "no state reported for the raptor master or worker"
    errs = ("; errors in its sandbox: " + " | ".join(errors)) if errors else ""
    head = (f"pilot: the raptor {ended} ended before the run did" if ended else
            f"pilot: the warm raptor worker ({ranks} rank(s), up to {per_node} per node{where}) did not answer "
            f"its probe task within {waited_s:.0f} s")
    hint = ("if the worker's ranks are not one MPI world (MPI_ERR_RANK, invalid rank), set the site's MPI plugin "
            "(`mpi.pmi: pmix` or what your site's srun --mpi takes); if they never registered, check that every "
            "node reaches the first node's address (no loopback-only host names) and read the raptor logs there; a "
            "slow start may need a larger DEEPRC_PILOT_START_TIMEOUT")
    waiting = f" Stages held back: {', '.join(stages)}." if stages else ""
    return (f"{head}. Radical Pilot reported: {saw}{errs}.{waiting} Sandbox: {base / 'sandbox'}. Fix: {hint}. "
            "Finished stages are kept; rerun the same command to resume.")
