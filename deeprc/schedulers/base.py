"""The scheduler interface: directives, submit, status and cancel of batch jobs."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from deeprc.registry import Registry

# states every scheduler's answer is mapped to
QUEUED, RUNNING, DONE, FAILED, CANCELLED, UNKNOWN = "queued", "running", "done", "failed", "cancelled", "unknown"


@dataclass
class JobRequest:
    """What one batch job asks for."""

    name: str
    nodes: int
    ntasks: int
    cores_per_node: int
    walltime: str  # HH:MM:SS
    gpus_per_node: int = 0
    ntasks_per_node: int | None = None  # default: ntasks spread over nodes
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    output: str = "job.out"  # path of the scheduler's log (%j style placeholders allowed)
    workdir: str = "."
    extra: list[str] = field(default_factory=list)


def tasks_per_node(job: JobRequest) -> int:
    return job.ntasks_per_node or max(1, -(-job.ntasks // job.nodes))


class Scheduler:
    """A batch system. Subclasses set `name`, `prefix` and the command builders, and register themselves
    with `@register_scheduler(NAME)`: everything about their name lives in their module."""

    name = "local"
    prefix = ""  # directive prefix, e.g. '#SBATCH'
    job_id_var = ""
    node_count_var = ""  # the allocation's node count inside a job (empty: not offered)
    submit_stdin = False  # True: the script goes to the submit command's stdin (LSF)
    commands: tuple[str, ...] = ()  # its submit, status and cancel programs (`sites probe`, `doctor`)
    rp_resource_manager = "FORK"  # Radical Pilot's resource manager for its allocations
    rp_job_url = "fork"  # Radical Pilot's job-manager URL scheme for submitting a pilot job

    def output_name(self, stem: str) -> str:
        """The job log's file name (schedulers with a job-id placeholder put it in)."""
        return f"{stem}.out"

    def submit_line(self, command: str, log: str) -> str:
        """The submit script's line for one job: prints the new job's id on stdout."""
        return command

    def submit_env(self, run_dir: str) -> dict[str, str]:
        """Variables the submit script exports before submitting (besides the site's scheduler_env)."""
        return {}

    def directives(self, job: JobRequest) -> list[str]:
        """The directive lines of the job script (values shell-quoted)."""
        return []

    def allocated_cores_per_node(self, environ: Mapping[str, str]) -> int | None:
        """Inside a job: the fewest cores any node of the allocation holds (None: not offered)."""
        return None

    def allocated_nodes(self, environ: Mapping[str, str]) -> list[str]:
        """Inside a job: the host names of the allocation's nodes ([]: not offered)."""
        return []

    def submit_command(self, script: str, after: Sequence[str] = ()) -> list[str]:
        """argv that submits `script` to run after the jobs `after` succeeded."""
        return ["bash", script]

    def parse_job_id(self, stdout: str) -> str:
        return stdout.strip().split()[-1] if stdout.strip() else ""

    def status_command(self, job_ids: Sequence[str]) -> list[str]:
        return []

    def parse_status(self, stdout: str, job_ids: Sequence[str]) -> dict[str, str]:
        return {j: UNKNOWN for j in job_ids}

    def cancel_command(self, job_ids: Sequence[str]) -> list[str]:
        return []

    def _line(self, *words: str) -> str:
        line = " ".join([self.prefix, *words])
        if any(c in line for c in "\n\r\0"):
            from deeprc.errors import DeepRCError

            raise DeepRCError(
                f"a scheduler directive would contain a line break: {line!r}. "
                "Fix: remove newlines from the site's and the command line's values (names, accounts, directives)."
            )
        return line


def q(value: object) -> str:
    """shlex.quote for any value."""
    return shlex.quote(str(value))


SCHEDULERS: Registry[Scheduler] = Registry("scheduler")
register_scheduler = SCHEDULERS.register
