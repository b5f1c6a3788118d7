"""No scheduler: the job script runs here in the background; its process group is the job."""

from __future__ import annotations

import os
from typing import Sequence

from deeprc.schedulers.base import (DONE, RUNNING, JobRequest, register_scheduler, Scheduler)


RUN_MARK = "DEEPRC_LAUNCH_RUN"  # set in a local job's environment: the run folder that started it


def start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot, /proc/PID/stat field 22); None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _environ(pid: int, wait_s: float = 1.0) -> list[bytes]:
    """The environment `pid` started with; an exec that is still loading shows an empty one for a moment."""
    import time

    end = time.time() + wait_s
    while True:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
        if data or time.time() > end:
            return data.split(b"\0")
        time.sleep(0.02)


def owned_by(pid_text: str, run_dir: str, started: str | None) -> str | None:
    """Why process group `pid_text` is not the local job this run started (None when it is): the pid must
    lead its own group, carry `DEEPRC_LAUNCH_RUN=<run_dir>` in its environment and have started when the
    launch recorded."""
    if not pid_text.isdigit() or int(pid_text) <= 1:
        return f"job id {pid_text!r} is not a process id DeepRC could have started"
    pid = int(pid_text)
    now = start_time(pid)
    if now is None:
        return None  # gone: nothing to signal
    if started is None or now != started:
        return f"process {pid} started at another time than the job this run launched (the id was reused)"
    try:
        if os.getpgid(pid) != pid:
            return f"process {pid} does not lead its own process group"
        env = _environ(pid)
    except OSError as exc:
        return f"process {pid} cannot be inspected ({exc.strerror})"
    if f"{RUN_MARK}={run_dir}".encode() not in env:
        return f"process {pid} was not started for this run folder"
    return None


@register_scheduler("local")
class Local(Scheduler):
    name = "local"
    commands = ()
    rp_resource_manager = "FORK"
    rp_job_url = "fork"

    def submit_line(self, command: str, log: str) -> str:
        import shlex

        # the job's pid is its id: the submit script runs in its own session, so setsid needs no fork
        return f"setsid {command} < /dev/null > {shlex.quote(log)} 2>&1 & echo $!"

    def submit_env(self, run_dir: str) -> dict[str, str]:
        return {RUN_MARK: run_dir}  # `cancel` signals only a process group carrying this
    prefix = "#"
    job_id_var = "DEEPRC_JOB_ID"

    def directives(self, job: JobRequest) -> list[str]:
        return []

    def submit_command(self, script: str, after: Sequence[str] = ()) -> list[str]:
        # `launch` starts this detached (new session) and records the pid as the job id
        return ["bash", script]

    def parse_status(self, stdout: str, job_ids: Sequence[str]) -> dict[str, str]:
        out = {}
        for j in job_ids:
            try:
                os.kill(int(j), 0)
                out[j] = RUNNING
            except (ProcessLookupError, ValueError):
                out[j] = DONE
            except PermissionError:
                out[j] = RUNNING
        return out

    def cancel_command(self, job_ids: Sequence[str]) -> list[str]:
        bad = [j for j in job_ids if not j.isdigit() or int(j) <= 1]
        if bad:
            raise ValueError(f"not process ids: {bad}")
        return ["kill", "-TERM", "--", *[f"-{j}" for j in job_ids]]
