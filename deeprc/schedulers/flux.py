"""Flux: #FLUX directives, flux batch --dependency=afterok:, flux jobs, flux cancel."""

from __future__ import annotations

from typing import Sequence

from deeprc.schedulers.base import (CANCELLED, DONE, FAILED, QUEUED, RUNNING, UNKNOWN, JobRequest, q,
                                    register_scheduler, Scheduler)
from deeprc.sites.walltime import parse_walltime

_STATES = {"DEPEND": QUEUED, "PRIORITY": QUEUED, "SCHED": QUEUED, "RUN": RUNNING, "CLEANUP": RUNNING,
           "COMPLETED": DONE, "FAILED": FAILED, "TIMEOUT": FAILED, "CANCELED": CANCELLED, "CANCELLED": CANCELLED}


@register_scheduler("flux")
class Flux(Scheduler):
    name = "flux"
    commands = ("flux",)
    rp_resource_manager = "FLUX"
    rp_job_url = "flux"
    prefix = "#FLUX:"
    job_id_var = "FLUX_JOB_ID"

    def directives(self, job: JobRequest) -> list[str]:
        d = [f"--job-name={q(job.name)}", f"-N {job.nodes}", f"-n {job.ntasks}",
             f"-t {parse_walltime(job.walltime) // 60}m", f"--output={q(job.output)}"]
        if job.partition:
            d.append(f"--queue={q(job.partition)}")
        if job.account:
            d.append(f"--bank={q(job.account)}")
        if job.gpus_per_node:
            d.append(f"-g {job.gpus_per_node}")
        d += list(job.extra)
        return [self._line(x) for x in d]

    def submit_command(self, script: str, after: Sequence[str] = ()) -> list[str]:
        cmd = ["flux", "batch"]
        cmd += [f"--dependency=afterok:{j}" for j in after]
        return cmd + [script]

    def status_command(self, job_ids: Sequence[str]) -> list[str]:
        return ["flux", "jobs", "-a", "-n", "-o", "{id.f58} {status}"]

    def parse_status(self, stdout: str, job_ids: Sequence[str]) -> dict[str, str]:
        out = {p[0]: _STATES.get(p[1].upper(), UNKNOWN) for p in (line.split() for line in stdout.splitlines()) if len(p) >= 2}
        return {j: out.get(j, UNKNOWN) for j in job_ids}

    def cancel_command(self, job_ids: Sequence[str]) -> list[str]:
        return ["flux", "cancel", *job_ids]
