"""Slurm: #SBATCH directives, sbatch --parsable, scontrol state, scancel."""

from __future__ import annotations

import re
from typing import Sequence

from deeprc.schedulers.base import (CANCELLED, DONE, FAILED, QUEUED, RUNNING, UNKNOWN, JobRequest, Scheduler, q,
                                    tasks_per_node)

_STATES = {
    "PENDING": QUEUED, "CONFIGURING": QUEUED, "REQUEUED": QUEUED, "SUSPENDED": QUEUED, "RESV_DEL_HOLD": QUEUED,
    "RUNNING": RUNNING, "COMPLETING": RUNNING, "STAGE_OUT": RUNNING, "SIGNALING": RUNNING,
    "COMPLETED": DONE,
    "FAILED": FAILED, "TIMEOUT": FAILED, "NODE_FAIL": FAILED, "OUT_OF_MEMORY": FAILED, "BOOT_FAIL": FAILED,
    "DEADLINE": FAILED, "PREEMPTED": FAILED,
    "CANCELLED": CANCELLED,
}


class Slurm(Scheduler):
    name = "slurm"
    prefix = "#SBATCH"
    job_id_var = "SLURM_JOB_ID"

    def directives(self, job: JobRequest) -> list[str]:
        # --ntasks-per-node always (Lightning's SLURM check rejects a bare --ntasks > 1), --ntasks when it differs
        ppn = tasks_per_node(job)
        d = [f"--job-name={q(job.name)}", f"--nodes={job.nodes}", f"--ntasks-per-node={ppn}"]
        if job.ntasks != ppn * job.nodes:
            d.append(f"--ntasks={job.ntasks}")
        d += [f"--time={job.walltime}", f"--output={q(job.output)}", f"--chdir={q(job.workdir)}"]
        if job.partition:
            d.append(f"--partition={q(job.partition)}")
        if job.account:
            d.append(f"--account={q(job.account)}")
        if job.qos:
            d.append(f"--qos={q(job.qos)}")
        if job.constraint:
            d.append(f"--constraint={q(job.constraint)}")
        if job.gpus_per_node:
            d.append(f"--gpus-per-node={job.gpus_per_node}")
        d += list(job.extra)
        return [self._line(x) for x in d]

    def submit_command(self, script: str, after: Sequence[str] = ()) -> list[str]:
        cmd = ["sbatch", "--parsable"]
        if after:
            cmd += [f"--dependency=afterok:{':'.join(after)}", "--kill-on-invalid-dep=yes"]
        return cmd + [script]

    def parse_job_id(self, stdout: str) -> str:
        return stdout.strip().splitlines()[-1].split(";")[0].strip() if stdout.strip() else ""

    def status_command(self, job_ids: Sequence[str]) -> list[str]:
        return ["scontrol", "-o", "show", "job", ",".join(job_ids)] if len(job_ids) == 1 else ["scontrol", "-o", "show", "job"]

    def parse_status(self, stdout: str, job_ids: Sequence[str]) -> dict[str, str]:
        seen: dict[str, str] = {}
        for line in stdout.splitlines():
            jid = re.search(r"\bJobId=(\S+)", line)
            st = re.search(r"\bJobState=(\S+)", line)
            if jid and st:
                seen[jid.group(1)] = _STATES.get(st.group(1), UNKNOWN)
        return {j: seen.get(j, UNKNOWN) for j in job_ids}

    def cancel_command(self, job_ids: Sequence[str]) -> list[str]:
        return ["scancel", *job_ids]
