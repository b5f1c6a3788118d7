"""The warm pilot's daemon: one RP session and pilot that outlive the command that started them.

`deeprc-deploy pilot start` (deeprc.pipeline.warm) spawns `python -m deeprc.pipeline.pilotd NAME`
detached. The daemon starts the pilot and its warm raptor worker, then serves requests on a
loopback TCP socket (a JSON line each way, authenticated by the token in its state folder, mode
0600): `run` starts a pipeline's engine in a thread on the shared pilot (a second `run` of a run
folder that is still going attaches to it), `status` reports, `stop` cancels. Runs share the pilot
within one core budget (:class:`Ledger`). The daemon ends on `stop`, SIGTERM, its idle timeout, the
allocation's walltime, or when the pilot or its raptor processes end; running stages are canceled,
finished outputs stay (a rerun resumes).
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from deeprc.errors import DeepRCError
from deeprc.pipeline.engine import Completion, Interrupted
from deeprc.pipeline.commands import is_local
from deeprc.pipeline.pilot import PilotBackend, usable_cores
from deeprc.pipeline.pilot_tasks import PilotTasks
from deeprc.pipeline.runfolder import _write_json
from deeprc.pipeline.spec import Stage
from deeprc.rp.session import LOCAL_CORES, Pilot

REQUEST_TIMEOUT_S = 10.0  # a client's request and the daemon's answer, each way
RUN_END_WAIT_S = 60.0  # how long a stopping daemon waits for its runs to cancel their stages
WALLTIME_MARGIN_S = 60.0  # stop this long before the allocation's walltime


class Ledger:
    """The cores the runs sharing one pilot hold. A run's budget is what the others leave free, and at most
    its fair share (the total over the runs going) while others run too, so none starves the rest."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.backends: list[SharedBackend] = []

    def free_for(self, me: "SharedBackend") -> int:
        runs = list(self.backends)
        free = self.total - sum(sum(list(b.own.values())) for b in runs if b is not me)
        return min(free, max(1, self.total // max(1, len(runs))))


class SharedBackend(PilotBackend):
    """A run's backend on the daemon's pilot: its budget comes from the :class:`Ledger`, and the
    daemon's stop ends it like a signal ends a run (stages canceled, finished outputs kept)."""

    def __init__(self, daemon: "Daemon") -> None:
        super().__init__(daemon.site, site_name=daemon.site_name, pilot=daemon.pilot)
        self.ledger, self.stopping, self.pilot_name = daemon.ledger, daemon.stopping, daemon.name
        self.own: dict[str, int] = {}  # stage -> cores it holds

    @property
    def core_budget(self) -> int:  # type: ignore[override]
        return self.ledger.free_for(self)

    @core_budget.setter
    def core_budget(self, value: int | None) -> None:
        pass  # the ledger's total is the budget (PilotBackend.start sets its own)

    @property
    def capacity(self) -> int | None:  # type: ignore[override]
        # with no core free nothing more starts; with one free, a run that has nothing running may start
        # its next stage even when wider (so wide stages are not starved by a stream of small ones)
        return None if self.core_budget - sum(self.own.values()) > 0 else len(self.own)

    @capacity.setter
    def capacity(self, value: int | None) -> None:
        pass

    def start(self, run: Any, pipe: Any) -> None:
        super().start(run, pipe)
        self.ledger.backends.append(self)

    def submit(self, stage: Stage, attempt: int) -> str:
        task = super().submit(stage, attempt)
        self.own[stage.name] = stage.ranks * stage.cores_per_rank
        return task

    def poll(self, timeout: float) -> list[Completion]:
        if self.stopping.is_set():
            raise Interrupted(signal.SIGTERM)
        out = super().poll(min(timeout, 0.5))
        for c in out:
            self.own.pop(c.stage, None)
        return out

    def cancel_all(self) -> None:
        super().cancel_all()
        self.own.clear()

    def close(self) -> None:
        if self in self.ledger.backends:
            self.ledger.backends.remove(self)
        super().close()


class Daemon:
    """One warm pilot and the runs on it (see the module docstring)."""

    def __init__(self, folder: Path, args: argparse.Namespace) -> None:
        from deeprc.pipeline.cli import load_site_or_default

        self.folder, self.name = folder, args.name
        self.site_name, self.site = args.site, load_site_or_default(args.site)
        self.cores, self.nodes, self.minutes, self.idle_s = args.cores, args.nodes, args.time, args.idle_timeout
        self.token = (folder / "token").read_text().strip()
        self.stopping = threading.Event()
        self.stop_reason = ""
        self.runs: dict[str, dict[str, Any]] = {}  # run folder -> {"thread", "state", "pipeline", "error"}
        self.lock = threading.Lock()
        self.report_lock = threading.Lock()
        self.last_active = time.time()
        self.pilot: Any = None
        self.ledger = Ledger(1)
        self.state: dict[str, Any] = {"name": self.name, "site": self.site_name, "pid": os.getpid(),
                                      "host": socket.gethostname(), "state": "starting", "started": time.time(),
                                      "idle_timeout_s": self.idle_s, "time_min": self.minutes}

    # state file ----------------------------------------------------------------
    def save(self, **fields: Any) -> None:
        with self.lock:
            self.state.update(fields)
            self.state["runs"] = {d: {k: v for k, v in r.items() if k != "thread"} for d, r in self.runs.items()}
            _write_json(self.folder / "state.json", self.state)

    # start -----------------------------------------------------------------------
    def start_pilot(self) -> None:
        from deeprc.pipeline.pilot_layout import allocation, oversubscribed, start_timeout

        t0 = time.time()
        base = self.folder / "rp"
        runtime = self.minutes or 1440
        # on a site with an image the warm worker lives in it too; it sees the pilot's folder and the site's
        # container.binds (runs sent to it must lie under one of them)
        programs = PilotTasks(self.site, self.folder, base)
        programs.write()
        if oversubscribed(self.site):  # RP's slots outnumber the cores: room for master, worker and executables
            total = self.cores or usable_cores()
            slots = max(total, LOCAL_CORES) if is_local(self.site) else total
            self.pilot = Pilot(self.site, self.site_name, cores=slots, worker_ranks=min(total, max(1, slots - 2)),
                               base=base, runtime_min=runtime, programs=programs).start()
        else:  # inside an allocation (deeprc.pipeline.pilot_layout): one worker rank per real core
            layout = allocation(self.site, self.cores or (self.nodes and self.nodes * self.site.partition(None)[1].cores_per_node))
            total = layout.cores
            self.pilot = Pilot(self.site, self.site_name, worker_ranks=total, base=base, layout=layout,
                               runtime_min=runtime, programs=programs).start()
        self.ledger = Ledger(total)
        deadline = time.time() + start_timeout()
        while not self.pilot.worker_ready:  # bounded: the probe must answer within DEEPRC_PILOT_START_TIMEOUT
            if self.pilot.probe_error or self.pilot.raptor_ended() or time.time() > deadline or self.stopping.is_set():
                raise self.pilot.stall(["(warm pilot start)"], ended=self.pilot.raptor_ended())
            time.sleep(0.1)
        self.last_active = time.time()  # the idle timeout counts from here
        self.save(state="ready", ready_s=round(time.time() - t0, 2), cores=total,
                  worker_ranks=self.pilot.worker_ranks, session=self.pilot.session_id)

    # requests --------------------------------------------------------------------
    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "status":
            with self.lock:
                runs = {d: {k: v for k, v in r.items() if k != "thread"} for d, r in self.runs.items()}
            return {"ok": True, "state": self.state.get("state"), "runs": runs, "busy": self.busy_cores(),
                    "cores": self.ledger.total}
        if op == "stop":
            self.stop("stopped by `deeprc-deploy pilot stop`")
            return {"ok": True}
        if op == "run":
            return self.start_run(req)
        return {"ok": False, "error": f"unknown request {op!r}"}

    def busy_cores(self) -> int:
        return sum(sum(list(b.own.values())) for b in list(self.ledger.backends))

    def start_run(self, req: dict[str, Any]) -> dict[str, Any]:
        run_dir = str(Path(req["run_dir"]).resolve())
        with self.lock:
            if self.stopping.is_set():
                return {"ok": False, "error": f"pilot '{self.name}' is stopping ({self.stop_reason})"}
            cur = self.runs.get(run_dir)
            if cur is not None and cur["state"] == "running":
                return {"ok": True, "run_dir": run_dir, "attached": True}
            entry = {"state": "running", "pipeline": req["pipeline"], "error": "", "started": time.time()}
            self.runs[run_dir] = entry
        self.last_active = time.time()
        entry["thread"] = threading.Thread(target=self._run, args=(req, run_dir, entry), name=f"run {run_dir}",
                                           daemon=True)
        entry["thread"].start()
        self.save()
        return {"ok": True, "run_dir": run_dir, "attached": False}

    def _run(self, req: dict[str, Any], run_dir: str, entry: dict[str, Any]) -> None:
        from deeprc.pipeline.cli import run_pipeline
        from deeprc.pipeline.report import build_report

        try:
            result, _ = run_pipeline(req["pipeline"], site_name=self.site_name, runner="pilot",
                                     profile=req.get("profile", "full"), run_dir=run_dir, stages=req.get("stages") or None,
                                     resume=bool(req.get("resume", True)), quiet=True, report=False,
                                     backend=SharedBackend(self))
            with self.report_lock:  # matplotlib's pyplot is not thread-safe
                try:
                    build_report(run_dir)
                except Exception as exc:  # a broken plot must not hide the run's own result
                    entry["note"] = f"report not written: {exc}"
            entry["state"] = result.state
        except DeepRCError as exc:
            entry.update(state="failed", error=str(exc))
        except BaseException as exc:  # a run's bug must not take the pilot (and the other runs) down
            entry.update(state="failed", error=f"{exc!r}\n{traceback.format_exc()[-2000:]}")
        finally:
            entry["finished"] = time.time()
            self.last_active = time.time()
            self.save()

    def active(self) -> list[str]:
        with self.lock:
            return [d for d, r in self.runs.items() if r["state"] == "running"]

    # life cycle ------------------------------------------------------------------
    def stop(self, reason: str) -> None:
        if not self.stopping.is_set():
            self.stop_reason = reason
            self.stopping.set()

    def _check(self) -> None:
        """Stop on the idle timeout, the walltime, or a pilot whose agent or raptor processes ended."""
        import radical.pilot as rp

        now = time.time()
        if self.idle_s and not self.active() and now - self.last_active > self.idle_s:
            self.stop(f"idle for {self.idle_s:g} s (--idle-timeout)")
        elif self.minutes and now > self.state["started"] + 60 * self.minutes - WALLTIME_MARGIN_S:
            self.stop(f"its time of {self.minutes} min is nearly over (--time)")
        elif self.pilot.pilot.state in rp.FINAL:
            self.stop(f"the pilot ended {self.pilot.pilot.state} (its sandbox: {self.pilot.base / 'sandbox'})")
        elif ended := self.pilot.raptor_ended():
            self.stop(f"its raptor master or worker ended ({ended})")

    def serve(self, sock: socket.socket) -> None:
        sock.settimeout(0.5)
        while not self.stopping.is_set():
            self._check()
            try:
                conn, _ = sock.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(REQUEST_TIMEOUT_S)
                req = json.loads(conn.makefile("r").readline() or "{}")
                if not isinstance(req, dict) or not hmac.compare_digest(str(req.get("token", "")), self.token):
                    reply: dict[str, Any] = {"ok": False, "error": "wrong or missing token"}
                else:
                    reply = self.handle(req)
                conn.sendall((json.dumps(reply) + "\n").encode())
            except (OSError, ValueError):
                pass

    def shutdown(self) -> None:
        """Cancel the runs' stages (their engines end like after a signal), then close the pilot."""
        self.save(state="stopping", reason=self.stop_reason)
        end = time.time() + RUN_END_WAIT_S
        for run_dir in self.active():
            thread = self.runs[run_dir].get("thread")
            if thread is not None:
                thread.join(max(0.1, end - time.time()))
        if self.pilot is not None:
            self.pilot.close()
        self.save(state="stopped", stopped=time.time(), port=None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m deeprc.pipeline.pilotd")
    ap.add_argument("folder")
    ap.add_argument("--name", required=True)
    ap.add_argument("--site", default="local")
    ap.add_argument("--cores", type=int, default=None)
    ap.add_argument("--nodes", type=int, default=None)
    ap.add_argument("--time", type=int, default=None, help="minutes")
    ap.add_argument("--idle-timeout", type=float, default=0.0, help="seconds (0: none)")
    args = ap.parse_args(argv)
    folder = Path(args.folder)
    daemon = Daemon(folder, args)
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop("SIGTERM"))
    signal.signal(signal.SIGINT, lambda *_: daemon.stop("SIGINT"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    daemon.save(port=sock.getsockname()[1])
    try:
        daemon.start_pilot()
        daemon.serve(sock)
    except BaseException as exc:
        daemon.stop(str(exc) if isinstance(exc, DeepRCError) else f"{exc!r}")
        daemon.save(state="failed", error=daemon.stop_reason)
        print(traceback.format_exc(), file=sys.stderr, flush=True)
    finally:
        sock.close()
        state = daemon.state.get("state")
        daemon.shutdown()
        if state == "failed":
            daemon.save(state="failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
