"""PBS Pro: #PBS directives, qsub -W depend=afterok:, qstat -x, qdel."""

from __future__ import annotations

import re
from typing import Sequence

from deeprc.schedulers.base import (CANCELLED, DONE, FAILED, QUEUED, RUNNING, UNKNOWN, JobRequest, Scheduler, q,
                                    register_scheduler, tasks_per_node)

_STATES = {"Q": QUEUED, "H": QUEUED, "W": QUEUED, "T": QUEUED, "S": QUEUED, "B": RUNNING, "R": RUNNING, "E": RUNNING,
           "F": DONE, "X": DONE}


@register_scheduler("pbs")
class PBS(Scheduler):
    name = "pbs"
    commands = ("qsub", "qstat", "qdel")
    rp_resource_manager = "PBSPRO"
    rp_job_url = "pbspro"
    prefix = "#PBS"
    job_id_var = "PBS_JOBID"
    node_count_var = "PBS_NUM_NODES"

    def directives(self, job: JobRequest) -> list[str]:
        ppn = tasks_per_node(job)
        select = f"select={job.nodes}:ncpus={job.cores_per_node}:mpiprocs={ppn}"
        if job.gpus_per_node:
            select += f":ngpus={job.gpus_per_node}"
        d = [f"-N {q(job.name)}", f"-l {select}", f"-l walltime={job.walltime}", "-j oe", f"-o {q(job.output)}"]
        if job.partition:
            d.append(f"-q {q(job.partition)}")
        if job.account:
            d.append(f"-A {q(job.account)}")
        d += list(job.extra)
        return [self._line(x) for x in d]

    def submit_command(self, script: str, after: Sequence[str] = ()) -> list[str]:
        cmd = ["qsub"]
        if after:
            cmd += ["-W", f"depend=afterok:{':'.join(after)}"]
        return cmd + [script]

    def status_command(self, job_ids: Sequence[str]) -> list[str]:
        return ["qstat", "-x", "-f", *job_ids]

    def parse_status(self, stdout: str, job_ids: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for block in re.split(r"\n(?=Job Id: )", stdout):
            m = re.match(r"Job Id: (\S+)", block.strip())
            st = re.search(r"job_state = (\w)", block)
            code = re.search(r"Exit_status = (-?\d+)", block)
            if m and st:
                state = _STATES.get(st.group(1), UNKNOWN)
                if state == DONE and code and code.group(1) != "0":
                    state = CANCELLED if code.group(1) in ("271", "-1") else FAILED
                out[m.group(1)] = state
        return {j: out.get(j, next((v for k, v in out.items() if k.split(".")[0] == j.split(".")[0]), UNKNOWN))
                for j in job_ids}

    def cancel_command(self, job_ids: Sequence[str]) -> list[str]:
        return ["qdel", *job_ids]
