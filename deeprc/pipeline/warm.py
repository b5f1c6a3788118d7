"""Warm pilots: `deeprc-deploy pilot start|status|stop|list` and `run --pilot NAME` (the client side).

A warm pilot is a detached daemon (:mod:`deeprc.pipeline.pilotd`) that owns one RP session, pilot and
warm raptor worker. Its state folder, `$DEEPRC_PILOTS_DIR/NAME` (default `~/.deeprc/pilots/NAME`,
mode 0700), holds `state.json` (state, pid, port, cores, runs), `token` (0600, the socket's
password), `daemon.log` and the pilot's RP folder `rp/`. Runs go to it over a loopback socket;
the run itself executes inside the daemon, so a client that exits or is killed loses nothing, and
the same `run --pilot NAME` of the same run folder attaches to it again.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click

from deeprc.errors import DeepRCError
from deeprc.pipeline.runfolder import read_json

STOP_WAIT_S = 90.0  # `pilot stop`: how long the daemon may take to cancel its runs and close the pilot
FOLLOW_POLL_S = 0.5


def pilots_home() -> Path:
    return Path(os.environ.get("DEEPRC_PILOTS_DIR") or Path.home() / ".deeprc" / "pilots")


def folder_of(name: str) -> Path:
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise DeepRCError(f"pilot name {name!r} is not usable as a folder name. Fix: use letters, digits, '-', '_' "
                          "and '.' only (e.g. --name mypilot).")
    return pilots_home() / name


def read_state(name: str) -> dict[str, Any]:
    return read_json(folder_of(name) / "state.json", {}) or {}


def alive(state: dict[str, Any]) -> bool:
    """True while the daemon named in `state` runs (its pid, still a pilotd process)."""
    pid = state.get("pid")
    try:
        cmd = Path(f"/proc/{int(pid)}/cmdline").read_bytes()
    except (OSError, TypeError, ValueError):
        return False
    return b"deeprc.pipeline.pilotd" in cmd


def _need_running(name: str) -> dict[str, Any]:
    state = read_state(name)
    if not state:
        raise DeepRCError(f"no warm pilot named '{name}' ({folder_of(name)} has no state.json). Fix: start one with "
                          f"`deeprc-deploy pilot start --name {name}`, or see `deeprc-deploy pilot list`.")
    if alive(state) and state.get("state") == "starting":
        raise DeepRCError(f"warm pilot '{name}' is still starting. Fix: wait for `deeprc-deploy pilot start` to return "
                          f"(or see `deeprc-deploy pilot status {name}`), then run again.")
    if not alive(state) or state.get("state") != "ready":
        why = state.get("reason") or state.get("error") or "its daemon is not running"
        raise DeepRCError(f"warm pilot '{name}' is {state.get('state', 'gone')} ({why}). Fix: start it again with "
                          f"`deeprc-deploy pilot start --name {name} --site {state.get('site', 'local')}` "
                          f"(its log: {folder_of(name) / 'daemon.log'}).")
    return state


def request(name: str, op: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
    """One request to the daemon of pilot `name` (a JSON line each way, bounded by `timeout`)."""
    state = _need_running(name)
    token = (folder_of(name) / "token").read_text().strip()
    try:
        with socket.create_connection(("127.0.0.1", int(state["port"])), timeout=timeout) as conn:
            conn.settimeout(timeout)
            conn.sendall((json.dumps({"token": token, "op": op, **fields}) + "\n").encode())
            reply = json.loads(conn.makefile("r").readline() or "null")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DeepRCError(f"warm pilot '{name}' did not answer on port {state.get('port')} within {timeout:g} s ({exc}). "
                          f"Fix: see {folder_of(name) / 'daemon.log'}; `deeprc-deploy pilot stop {name}` and start "
                          "it again.") from None
    if not isinstance(reply, dict) or not reply.get("ok"):
        raise DeepRCError(f"warm pilot '{name}' refused the request: {(reply or {}).get('error', 'no answer')}. "
                          "Fix: see `deeprc-deploy pilot status " + name + "`.")
    return reply


def start(name: str, site: str, cores: int | None, nodes: int | None, minutes: int | None, idle_s: float) -> dict:
    """Spawn the daemon detached and wait (bounded) until its warm worker answered."""
    from deeprc.pipeline.pilot_layout import start_timeout
    from deeprc.pipeline.taskenv import private_dir

    folder = folder_of(name)
    old = read_state(name)
    if old and alive(old):
        raise DeepRCError(f"warm pilot '{name}' is already {old.get('state')} (pid {old.get('pid')}). Fix: use it "
                          f"(`run PIPELINE --pilot {name}`), or stop it first (`deeprc-deploy pilot stop {name}`).")
    private_dir(folder)
    (folder / "state.json").unlink(missing_ok=True)
    fd = os.open(folder / "token", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    argv = [sys.executable, "-m", "deeprc.pipeline.pilotd", str(folder), "--name", name, "--site", site,
            "--idle-timeout", str(idle_s), *(["--cores", str(cores)] if cores else []),
            *(["--nodes", str(nodes)] if nodes else []), *(["--time", str(minutes)] if minutes else [])]
    with open(folder / "daemon.log", "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)  # in this folder: relative paths in specs mean the same
    limit = start_timeout() + 60
    end = time.time() + limit
    while time.time() < end:
        state = read_state(name)
        if state.get("state") == "ready":
            return state
        if state.get("state") in ("failed", "stopped") or proc.poll() is not None:
            proc.wait(30)
            raise DeepRCError(f"warm pilot '{name}' did not start: {state.get('error') or state.get('reason') or 'its daemon exited'}"
                              f". Fix: see {folder / 'daemon.log'} and the RP sandbox under {folder / 'rp'}.")
        time.sleep(0.2)
    proc.terminate()
    raise DeepRCError(f"warm pilot '{name}' was not ready within {limit:g} s (DEEPRC_PILOT_START_TIMEOUT + 60). "
                      f"Fix: see {folder / 'daemon.log'}; raise DEEPRC_PILOT_START_TIMEOUT on a slow site.")


def stop(name: str) -> dict[str, Any]:
    """Ask the daemon to stop (it cancels running stages, keeps finished outputs); bounded, then signals."""
    from deeprc.rp.reaping import stop_leftovers

    state = read_state(name)
    if alive(state):
        try:
            request(name, "stop")
        except DeepRCError:
            os.kill(int(state["pid"]), signal.SIGTERM)
        end = time.time() + STOP_WAIT_S
        while alive(state) and time.time() < end:
            time.sleep(0.2)
        if alive(state):
            os.kill(int(state["pid"]), signal.SIGKILL)
            stop_leftovers(folder_of(name) / "rp")
    return read_state(name)


def follow(name: str, run_dir: Path, say: Any) -> dict[str, Any]:
    """Print the run's stage changes until it ends in the daemon; its final status.json."""
    seen: dict[str, str] = {}
    gone_since = 0.0
    while True:
        status = read_json(run_dir / "status.json", {}) or {}
        try:
            reply = request(name, "status")
        except DeepRCError:  # the daemon stops (it cancels its runs first) or is gone
            gone_since = gone_since or time.time()
            if alive(read_state(name)) and time.time() - gone_since < STOP_WAIT_S:
                time.sleep(FOLLOW_POLL_S)
                continue
            if status.get("run") in ("done", "failed", "canceled"):
                return status
            raise
        for stage, st in (status.get("stages") or {}).items():
            if st.get("state") != seen.get(stage) and st.get("state") not in ("pending", None):
                seen[stage] = st["state"]
                say(f"{st['state']} {stage}")
        run = reply["runs"].get(str(run_dir), {})
        if run.get("state") not in (None, "running"):
            if run.get("state") == "failed" and run.get("error"):  # the run could not start, or broke
                raise DeepRCError(run["error"])
            return read_json(run_dir / "status.json", {}) or {}
        time.sleep(FOLLOW_POLL_S)


def run_on_pilot(name: str, pipeline: str, profile: str, run_dir: str | None, stages: list[str], resume: bool) -> None:
    """`run PIPELINE --pilot NAME`: start (or attach to) the run in the daemon and follow it to its end."""
    from rich.console import Console

    from deeprc.pipeline.cli import default_run_dir, failure_error, load_site_or_default
    from deeprc.pipeline.progress import stage_table
    from deeprc.pipeline.report import time_split
    from deeprc.pipeline.runfolder import RunFolder
    from deeprc.pipeline.spec import load_pipeline

    state = _need_running(name)
    pipe = load_pipeline(pipeline, profile)  # a broken spec is refused here, before the daemon sees it
    path = Path(run_dir or default_run_dir(pipe, load_site_or_default(state.get("site", "local")))).resolve()
    reply = request(name, "run", pipeline=str(Path(pipeline).resolve()), profile=profile, run_dir=str(path),
                    stages=stages, resume=resume)
    console = Console()
    console.print(f"{'attached to' if reply['attached'] else 'started'} {pipe.name} ({profile}) on warm pilot "
                  f"'{name}': {path}")
    try:
        status = follow(name, path, lambda msg: console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {msg}"))
    except KeyboardInterrupt:
        console.print(f"detached: the run goes on in warm pilot '{name}'. The same command attaches again; "
                      f"`deeprc-deploy pilot stop {name}` cancels it (finished outputs stay).")
        sys.exit(130)
    run = RunFolder(path)
    console.print(stage_table(run, f"{pipe.name}: {status.get('run')} in {status.get('wall_s') or 0:.1f} s", metrics=True))
    split = time_split(path)
    if split:
        console.print("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in split.items()))
    if status.get("run") == "canceled":
        raise DeepRCError(f"run {path} was canceled: warm pilot '{name}' stopped "
                          f"({read_state(name).get('reason', 'stopped')}). Finished stages are kept. Fix: rerun the same "
                          "command on a running pilot (it resumes).", exit_code=1)
    if status.get("run") != "done":
        stages_st = status.get("stages") or {}
        raise failure_error(SimpleNamespace(stages=stages_st, failed=[n for n, s in stages_st.items()
                                                                      if s.get("state") == "failed"]), path)


# ---- the `pilot` command group -----------------------------------------------------------------

@click.group("pilot")
def pilot() -> None:
    """Warm pilots that outlive the command: start, status, stop, list (then `run PIPELINE --pilot NAME`)."""


@pilot.command("start")
@click.option("--site", default="local", show_default=True, help="Site name or site YAML path.")
@click.option("--name", default="default", show_default=True, help="The pilot's name (its folder under ~/.deeprc/pilots).")
@click.option("--cores", type=click.IntRange(1, 1_000_000), default=None, help="Its core budget (default: the usable cores, or the allocation's).")
@click.option("--nodes", type=click.IntRange(1, 100_000), default=None, help="Nodes (a scheduler site, inside an allocation).")
@click.option("--time", "minutes", type=click.IntRange(1, 100_000), default=None, help="Minutes it may live (the allocation's walltime).")
@click.option("--idle-timeout", type=click.FloatRange(0), default=1800.0, show_default=True, help="Seconds without runs before it stops (0: never).")
def start_cmd(site: str, name: str, cores: int | None, nodes: int | None, minutes: int | None, idle_timeout: float) -> None:
    """Start a warm pilot (a detached daemon with warm raptor workers) and wait until it answers."""
    t0 = time.time()
    state = start(name, site, cores, nodes, minutes, idle_timeout)
    click.echo(f"warm pilot '{name}' ready in {time.time() - t0:.1f} s: {state.get('cores')} cores, "
               f"{state.get('worker_ranks')} warm worker rank(s), pid {state.get('pid')}, site {site}; "
               f"idle timeout {idle_timeout:g} s. Use it with `deeprc-deploy run PIPELINE --pilot {name}`.")


@pilot.command("status")
@click.argument("name", default="default")
def status_cmd(name: str) -> None:
    """Show a warm pilot's state and its runs."""
    state = read_state(name)
    if not state:
        raise DeepRCError(f"no warm pilot named '{name}'. Fix: see `deeprc-deploy pilot list`.")
    live = alive(state)
    runs = request(name, "status")["runs"] if live and state.get("state") == "ready" else state.get("runs") or {}
    click.echo(f"{name}: {state.get('state')}{'' if live else ' (daemon not running)'}, site {state.get('site')}, "
               f"{state.get('cores', '?')} cores, pid {state.get('pid')}"
               + (f", ready in {state['ready_s']:.1f} s" if state.get("ready_s") else "")
               + (f"; {state['reason']}" if state.get("reason") else ""))
    for path, run in runs.items():
        click.echo(f"  {run.get('state'):9} {path} ({run.get('pipeline')})")


@pilot.command("stop")
@click.argument("name", default="default")
def stop_cmd(name: str) -> None:
    """Stop a warm pilot: running stages are canceled, finished outputs stay (a rerun resumes)."""
    if not read_state(name):
        raise DeepRCError(f"no warm pilot named '{name}'. Fix: see `deeprc-deploy pilot list`.")
    state = stop(name)
    canceled = [p for p, r in (state.get("runs") or {}).items() if r.get("state") == "canceled"]
    click.echo(f"warm pilot '{name}' {state.get('state')}"
               + (f"; canceled run(s), finished outputs kept: {', '.join(canceled)}" if canceled else ""))


@pilot.command("list")
def list_cmd() -> None:
    """List the warm pilots (running or not) in ~/.deeprc/pilots."""
    home = pilots_home()
    names = sorted(p.name for p in home.iterdir() if (p / "state.json").is_file()) if home.is_dir() else []
    if not names:
        click.echo(f"no warm pilots in {home}")
    for n in names:
        st = read_state(n)
        active = sum(1 for r in (st.get("runs") or {}).values() if r.get("state") == "running")
        click.echo(f"{n:16} {st.get('state', '?'):9} {'running' if alive(st) else 'not running':12} site {st.get('site')}, "
                   f"{st.get('cores', '?')} cores, {active} active run(s)")
