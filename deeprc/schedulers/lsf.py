"""IBM LSF: #BSUB directives, bsub < script with -w done(), bjobs, bkill."""

from __future__ import annotations

import re
from typing import Sequence

from deeprc.schedulers.base import (CANCELLED, DONE, FAILED, QUEUED, RUNNING, UNKNOWN, JobRequest, q,
                                    register_scheduler, Scheduler)

_STATES = {"PEND": QUEUED, "PSUSP": QUEUED, "USUSP": QUEUED, "SSUSP": QUEUED, "WAIT": QUEUED, "RUN": RUNNING,
           "DONE": DONE, "EXIT": FAILED, "ZOMBI": CANCELLED}


@register_scheduler("lsf")
class LSF(Scheduler):
    name = "lsf"
    commands = ("bsub", "bjobs", "bkill")
    rp_resource_manager = "LSF"
    rp_job_url = "lsf"

    def submit_line(self, command: str, log: str) -> str:
        return command + " | sed -n 's/^Job <\\([0-9]*\\)>.*/\\1/p'"  # bsub prints `Job <ID> is submitted ...`
    prefix = "#BSUB"
    job_id_var = "LSB_JOBID"
    submit_stdin = True  # `bsub < script`: LSF reads #BSUB lines only from stdin

    def directives(self, job: JobRequest) -> list[str]:
        h, m, _ = job.walltime.split(":")
        d = [f"-J {q(job.name)}", f"-nnodes {job.nodes}", f"-W {int(h)}:{m}", f"-o {q(job.output)}",
             f"-cwd {q(job.workdir)}"]
        if job.partition:
            d.append(f"-q {q(job.partition)}")
        if job.account:
            d.append(f"-P {q(job.account)}")
        d += list(job.extra)
        return [self._line(x) for x in d]

    def submit_command(self, script: str, after: Sequence[str] = ()) -> list[str]:
        cmd = ["bsub"]
        if after:
            cmd += ["-w", " && ".join(f"done({j})" for j in after)]
        return cmd

    def parse_job_id(self, stdout: str) -> str:
        m = re.search(r"Job <(\d+)>", stdout)
        return m.group(1) if m else ""

    def status_command(self, job_ids: Sequence[str]) -> list[str]:
        return ["bjobs", "-a", "-noheader", "-o", "jobid stat", *job_ids]

    def parse_status(self, stdout: str, job_ids: Sequence[str]) -> dict[str, str]:
        out = {p[0]: _STATES.get(p[1], UNKNOWN) for p in (line.split() for line in stdout.splitlines()) if len(p) >= 2}
        return {j: out.get(j, UNKNOWN) for j in job_ids}

    def cancel_command(self, job_ids: Sequence[str]) -> list[str]:
        return ["bkill", *job_ids]
