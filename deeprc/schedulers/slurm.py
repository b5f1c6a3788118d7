"""Slurm: #SBATCH directives, sbatch --parsable, scontrol state, scancel."""

from __future__ import annotations

import re
import subprocess
from typing import Mapping, Sequence

from deeprc.schedulers.base import (CANCELLED, DONE, FAILED, QUEUED, RUNNING, UNKNOWN, JobRequest, Scheduler, q,
                                    register_scheduler, tasks_per_node)

_STATES = {
    "PENDING": QUEUED, "CONFIGURING": QUEUED, "REQUEUED": QUEUED, "SUSPENDED": QUEUED, "RESV_DEL_HOLD": QUEUED,
    "RUNNING": RUNNING, "COMPLETING": RUNNING, "STAGE_OUT": RUNNING, "SIGNALING": RUNNING,
    "COMPLETED": DONE,
    "FAILED": FAILED, "TIMEOUT": FAILED, "NODE_FAIL": FAILED, "OUT_OF_MEMORY": FAILED, "BOOT_FAIL": FAILED,
    "DEADLINE": FAILED, "PREEMPTED": FAILED,
    "CANCELLED": CANCELLED,
}


@register_scheduler("slurm")
class Slurm(Scheduler):
    name = "slurm"
    commands = ("sbatch", "squeue", "scancel")
    rp_resource_manager = "SLURM"
    rp_job_url = "slurm"

    def output_name(self, stem: str) -> str:
        return f"{stem}-%j.out"

    def submit_line(self, command: str, log: str) -> str:
        return command + " | cut -d ';' -f 1"  # --parsable prints `ID;CLUSTER` on multi-cluster sites

    prefix = "#SBATCH"
    job_id_var = "SLURM_JOB_ID"
    node_count_var = "SLURM_JOB_NUM_NODES"

    def allocated_cores_per_node(self, environ: Mapping[str, str]) -> int | None:
        """From `SLURM_JOB_CPUS_PER_NODE`, e.g. `2(x2)` or `4,2(x3)`."""
        counts = [int(m) for m in re.findall(r"(\d+)(?:\(x\d+\))?", environ.get("SLURM_JOB_CPUS_PER_NODE", ""))]
        return min(counts) if counts else None

    def allocated_nodes(self, environ: Mapping[str, str]) -> list[str]:
        """`SLURM_JOB_NODELIST` expanded by `scontrol show hostnames` (bounded; [] when it cannot run)."""
        nodelist = environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST") or ""
        if not nodelist:
            return []
        try:
            out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True,
                                 timeout=20, env=dict(environ))
        except (OSError, subprocess.TimeoutExpired):
            return []
        return out.stdout.split() if out.returncode == 0 else []

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
