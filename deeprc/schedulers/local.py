"""No scheduler: the job script runs here in the background; its process group is the job."""

from __future__ import annotations

import os
from typing import Sequence

from deeprc.schedulers.base import DONE, RUNNING, JobRequest, Scheduler


class Local(Scheduler):
    name = "local"
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
        return ["kill", "-TERM", "--", *[f"-{j}" for j in job_ids]]
