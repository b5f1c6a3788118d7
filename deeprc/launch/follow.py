"""Following a run: scheduler states of its jobs, the runtime's status.json, logs, cancel."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

from deeprc.errors import DeepRCError
from deeprc.launch.submit import read_record, scheduler_env, write_record
from deeprc.pipeline.runfolder import load_status
from deeprc.schedulers import get_scheduler
from deeprc.schedulers.base import UNKNOWN


def _run_dir(run: str | Path) -> Path:
    from deeprc.pipeline.runfolder import require_run

    return require_run(run)


def job_states(record: dict[str, Any]) -> dict[str, str]:
    """job id -> queued|running|done|failed|cancelled|unknown from the scheduler."""
    sched = get_scheduler(record["scheduler"])
    ids = [j["job_id"] for j in record.get("jobs", [])]
    if not ids:
        return {}
    cmd = sched.status_command(ids)
    if not cmd:
        return sched.parse_status("", ids)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                             env=scheduler_env(record.get("scheduler_env"))).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {j: UNKNOWN for j in ids}
    return sched.parse_status(out, ids)


def run_status(run: str | Path) -> dict[str, Any]:
    """{'run': state, 'stages': {...}, 'jobs': [{key, job_id, state}], 'launch': record|None}."""
    rd = _run_dir(run)
    status: dict[str, Any] = {}
    sp = rd / "status.json"
    if sp.is_file():
        status = load_status(sp)
    record = read_record(rd)
    jobs = []
    if record:
        states = job_states(record)
        jobs = [{"key": j["key"], "job_id": j["job_id"], "state": states.get(j["job_id"], UNKNOWN)} for j in record["jobs"]]
        stages = status.get("stages", {})
        for j in jobs:  # the scheduler forgets finished jobs after a while: fall back to the runtime's view
            if j["state"] == UNKNOWN:
                known = status.get("run") if j["key"] == "pilot" else stages.get(j["key"], {}).get("state")
                if known in ("done", "failed"):
                    j["state"] = known
        if record.get("cancelled"):
            for j in jobs:
                if j["state"] in ("unknown", "queued", "running"):
                    j["state"] = "cancelled"
    stages = {k: dict(v) for k, v in status.get("stages", {}).items()}
    for name, st in stages.items():  # `_done.json` marks success, whichever process wrote status.json last
        if (rd / "stages" / name / "_done.json").is_file():
            st["state"] = "done"
    run_state = status.get("run", "pending" if record else "unknown")
    if record and record.get("mode") == "batch":
        run_state = _batch_run_state(stages, jobs)
    return {"run": run_state, "stages": stages, "jobs": jobs, "launch": record, "run_dir": str(rd),
            "error": status.get("error")}


def _batch_run_state(stages: dict[str, dict], jobs: list[dict]) -> str:
    """One state for a run whose stages are separate jobs (each job's runner sees only its stage)."""
    states = {j["state"] for j in jobs}
    if stages and all(s.get("state") == "done" for s in stages.values()) and len(stages) >= len(jobs):
        return "done"
    if "cancelled" in states:
        return "cancelled"
    if "failed" in states or any(s.get("state") == "failed" for s in stages.values()):
        return "failed"
    if "running" in states:
        return "running"
    return "queued" if states <= {"queued"} else "running"


def log_files(run: str | Path, stage: str | None = None) -> list[Path]:
    """The run's logs (RUN/logs/<stage>.log) and the scheduler's job outputs (RUN/launch/*.out)."""
    rd = _run_dir(run)
    files: list[Path] = []
    logs = rd / "logs"
    if stage:
        from deeprc.pipeline.spec import NAME

        if not re.fullmatch(NAME, stage):
            raise DeepRCError(f"--stage {stage!r} is not a stage name (letters, digits, '_', '.', '-'). "
                              f"Fix: pass a stage of the run, e.g. one listed by `deeprc-deploy status {rd}`.")
        files += sorted(logs.glob(f"{stage}.log")) + sorted(logs.glob(f"{stage}.*.log"))
        files += sorted((rd / "launch").glob(f"{stage}-*.out")) + sorted((rd / "launch").glob(f"{stage}.out"))
        if not files:
            known = sorted({p.name.split(".")[0] for p in logs.glob("*.log")}) if logs.is_dir() else []
            raise DeepRCError(
                f"no logs for stage '{stage}' in {rd} yet. Fix: wait until it starts"
                + (f", or choose one of: {', '.join(known)}" if known else "") + "."
            )
        return files
    if logs.is_dir():
        files += sorted(logs.glob("*.log"))
    if (rd / "launch").is_dir():
        files += sorted((rd / "launch").glob("*.out"))
    return files


_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\[\]-]{0,99}")


def check_ownership(rd: Path, record: dict[str, Any]) -> None:
    """Refuse to cancel unless every job in launch.json is one this run started (cancel kills nothing else)."""
    from deeprc.errors import config_error
    from deeprc.schedulers.local import owned_by

    jobs = record.get("jobs")
    if not isinstance(jobs, list) or not all(isinstance(j, dict) and "job_id" in j for j in jobs):
        raise config_error(rd / "launch.json", "jobs", "not the list of jobs DeepRC writes",
                           "relaunch the run; cancel its jobs by hand if any still run")
    for i, j in enumerate(jobs):
        jid = str(j["job_id"])
        why = None
        if not _JOB_ID.fullmatch(jid):
            why = f"job id {jid!r} is not a scheduler job id"
        elif record.get("scheduler") == "local":
            why = owned_by(jid, str(Path(record.get("run_dir", rd))), j.get("started"))
            if why is None and Path(record.get("run_dir", rd)).resolve() != rd.resolve():
                why = f"launch.json names another run folder ({record.get('run_dir')})"
        if why:
            raise config_error(rd / "launch.json", f"jobs[{i}].job_id", f"{why}; nothing was cancelled",
                               "cancel only runs launched from this folder; if the job is yours, stop it by hand")


def cancel(run: str | Path) -> dict[str, Any]:
    """Cancel every job of a launched run; finished stage outputs stay where they are."""
    rd = _run_dir(run)
    record = read_record(rd)
    if not record:
        raise DeepRCError(f"{rd} has no launch.json: it was not started by `deeprc-deploy launch`. Fix: stop a local "
                          "`deeprc-deploy run` with Ctrl-C instead.")
    sched = get_scheduler(record["scheduler"])
    states = job_states(record)
    check_ownership(rd, record)
    live = [j["job_id"] for j in record["jobs"] if states.get(j["job_id"]) not in ("done", "failed", "cancelled")]
    if live:
        cmd = sched.cancel_command(live)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                              env=scheduler_env(record.get("scheduler_env")))
        if proc.returncode != 0 and sched.name != "local":
            raise DeepRCError(f"`{' '.join(cmd)}` failed: {proc.stderr.strip()}. Fix: cancel the jobs by hand.")
    record["cancelled"] = time.time()
    write_record(rd, record)
    return {"cancelled": live, "run_dir": str(rd)}
