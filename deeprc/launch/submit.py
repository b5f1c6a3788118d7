"""Submit rendered jobs, chaining dependencies, and record them in RUN/launch.json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from deeprc.errors import DeepRCError
from deeprc.launch.plan import LaunchPlan
from deeprc.launch.render import RenderedJob
from deeprc.schedulers import get_scheduler


def write_scripts(plan: LaunchPlan, jobs: list[RenderedJob]) -> None:
    """Create RUN/launch/ with the job scripts and the RP resource config (pilot mode)."""
    from deeprc.cloud.keys import write_secret

    plan.launch_dir.mkdir(parents=True, exist_ok=True)
    plan.launch_dir.chmod(0o700)  # the job scripts export the site's environment (its secrets)
    (plan.run_dir / "logs").mkdir(exist_ok=True)
    for j in jobs:
        write_secret(j.script_path, j.text)  # 0600 from the first byte
        j.script_path.chmod(0o700)
        for name, text in j.files.items():
            write_secret(plan.launch_dir / name, text)


def scheduler_env(extra: dict[str, str] | None) -> dict[str, str] | None:
    """This process's environment plus the site's scheduler_env (None: inherit it unchanged)."""
    return {**os.environ, **extra} if extra else None


def _run(argv: list[str], stdin: str | None = None, env: dict[str, str] | None = None) -> str:
    if not shutil.which(argv[0]):
        raise DeepRCError(
            f"cannot submit: `{argv[0]}` is not on PATH on this host. Fix: run `deeprc-deploy launch` on a login "
            "node of the site, or use --dry-run to see the scripts."
        )
    proc = subprocess.run(argv, capture_output=True, text=True, input=stdin, timeout=120, env=env)
    if proc.returncode != 0:
        raise DeepRCError(
            f"`{' '.join(argv)}` failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()}. "
            "Fix: check the partition, account and walltime in the site config and the options given to launch."
        )
    return proc.stdout


def submit(plan: LaunchPlan, jobs: list[RenderedJob]) -> dict[str, Any]:
    """Write and submit every job; return (and write) the launch record."""
    write_scripts(plan, jobs)
    sched = get_scheduler(plan.site.scheduler)
    ids: dict[str, str] = {}
    record: dict[str, Any] = {
        "site": plan.site.name, "site_file": str(plan.site_file), "scheduler": sched.name, "mode": plan.mode,
        "pipeline": plan.pipeline.name, "pipeline_file": str(plan.pipeline_file), "profile": plan.profile,
        "partition": plan.partition, "nodes": plan.nodes, "walltime": plan.walltime, "run_dir": str(plan.run_dir),
        "submitted": time.time(), "jobs": [], "scheduler_env": plan.site.scheduler_env,
    }
    for j in jobs:
        after = [ids[a] for a in j.after]
        started = None
        if sched.name == "local":
            if after:
                raise DeepRCError("the local site runs one job at a time. Fix: use --mode pilot for --site local.")
            out = open(plan.launch_dir / f"{j.key}.out", "ab")
            from deeprc.schedulers.local import RUN_MARK, start_time

            proc = subprocess.Popen(["bash", str(j.script_path)], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, cwd=plan.run_dir,
                                    env={**os.environ, RUN_MARK: str(plan.run_dir)})
            out.close()
            job_id, argv = str(proc.pid), ["bash", str(j.script_path)]
            started = start_time(proc.pid)
        else:
            argv = j.submit_argv(plan, after)
            stdin = j.script_path.read_text() if sched.submit_stdin else None
            job_id = sched.parse_job_id(_run(argv, stdin, scheduler_env(plan.site.scheduler_env)))
            if not job_id:
                raise DeepRCError(f"`{' '.join(argv)}` printed no job id. Fix: check the scheduler's output above.")
        ids[j.key] = job_id
        record["jobs"].append({"key": j.key, "job_id": job_id, "script": str(j.script_path), "submit": argv, "after": after,
                               **({"started": started} if sched.name == "local" else {})})
        write_record(plan.run_dir, record)
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
