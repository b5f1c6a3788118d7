"""Submit a launch request by running its submit script; record the jobs in RUN/launch.json."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deeprc.errors import DeepRCError
from deeprc.schedulers import get_scheduler

if TYPE_CHECKING:
    from deeprc.launch.request import LaunchRequest

SUBMIT_TIMEOUT_S = 120.0  # per job: how long one submit command may take


def scheduler_env(extra: dict[str, str] | None) -> dict[str, str] | None:
    """This process's environment plus the site's scheduler_env (None: inherit it unchanged)."""
    return {**os.environ, **extra} if extra else None


def _check_programs(request: LaunchRequest) -> None:
    """Every program the submit lines start must be on PATH before anything is submitted."""
    for j in request.jobs:
        prog = shlex.split(j.submit_line)[0] if j.submit_line else ""
        if prog == "setsid":
            continue
        if prog and not shutil.which(prog):
            raise DeepRCError(
                f"cannot submit: `{prog}` is not on PATH on this host. Fix: run `deeprc-deploy launch` on a login "
                "node of the site, or use --dry-run to see the scripts."
            )


def _submitted(stdout: str, keys: list[str]) -> dict[str, str]:
    """key -> job id from the submit script's `KEY: ID` lines (a key with an empty id is left out)."""
    ids = {}
    for line in stdout.splitlines():
        key, sep, job_id = line.partition(": ")
        if sep and key in keys and job_id.strip():
            ids[key] = job_id.strip()
    return ids


def submit(request: LaunchRequest) -> dict[str, Any]:
    """Write the request's files, run its submit script as written, record (and return) the jobs it submitted.

    A failing submit command stops the script: the jobs submitted before it are recorded (so `cancel` reaches
    them) and the error names the job, the command and what the scheduler said."""
    plan = request.plan
    sched = get_scheduler(plan.site.scheduler)
    _check_programs(request)
    request.write()
    keys = [j.key for j in request.jobs]
    record: dict[str, Any] = {
        "site": plan.site.name, "site_file": str(plan.site_file), "scheduler": sched.name, "mode": plan.mode,
        "pipeline": plan.pipeline.name, "pipeline_file": str(plan.pipeline_file), "profile": plan.profile,
        "partition": plan.partition, "nodes": plan.nodes, "walltime": plan.walltime, "run_dir": str(plan.run_dir),
        "submitted": time.time(), "jobs": [], "scheduler_env": plan.site.scheduler_env,
        "submit_script": str(request.submit_path),
    }
    # its own session: a local job's `setsid` then keeps the pid the script prints; a timeout kills it all
    proc = subprocess.Popen(["bash", str(request.submit_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True, cwd=plan.run_dir)
    limit = SUBMIT_TIMEOUT_S * max(1, len(keys))
    try:
        out, err = proc.communicate(timeout=limit)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        timed_out = True
    ids = _submitted(out, keys)
    from deeprc.schedulers.local import start_time

    for j in request.jobs:
        if j.key not in ids:
            break
        job_id = sched.parse_job_id(ids[j.key])
        entry = {"key": j.key, "job_id": job_id, "script": str(j.script_path), "submit": j.submit_line,
                 "after": [ids[a] for a in j.after]}
        if sched.name == "local":
            entry["started"] = start_time(int(job_id)) if job_id.isdigit() else None
        record["jobs"].append(entry)
    write_record(plan.run_dir, record)
    if timed_out or proc.returncode != 0 or len(record["jobs"]) < len(keys):
        failed = next(j for j in request.jobs if j.key not in ids) if len(ids) < len(keys) else request.jobs[-1]
        done = ", ".join(f"{e['key']} ({e['job_id']})" for e in record["jobs"]) or "none"
        said = (err or out).strip()[-1500:] or "(nothing)"
        why = (f"did not finish in {limit:.0f} s" if timed_out else
               f"exited {proc.returncode}" if proc.returncode else "printed no job id")
        raise DeepRCError(
            f"submitting job '{failed.key}' failed: `{failed.submit_line}` in {request.submit_path} {why}; "
            f"the scheduler said: {said}. Jobs already submitted: {done} (recorded in {plan.run_dir / 'launch.json'}; "
            f"`deeprc-deploy cancel {plan.run_dir}` removes them). Fix: check the partition, account and walltime in "
            "the site config and the options given to launch."
        )
    return record


def write_record(run_dir: Path, record: dict[str, Any]) -> None:
    path = Path(run_dir) / "launch.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


def read_record(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / "launch.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DeepRCError(f"{path}: cannot read it ({exc}). Fix: relaunch, or remove the broken file.") from None
    if not isinstance(record, dict) or not isinstance(record.get("jobs", []), list):
        raise DeepRCError(f"{path}: not the launch record DeepRC writes (a JSON mapping with a list of jobs). "
                          "Fix: relaunch, or remove the broken file.")
    return record
