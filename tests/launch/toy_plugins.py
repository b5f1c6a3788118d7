"""A scheduler, a launcher and a container runtime defined outside DeepRC: each registers itself here, and
nothing else is edited for a site to use them (tests/launch/test_plugins.py)."""

from __future__ import annotations

from typing import Mapping, Sequence

from deeprc.launchers import Launcher, register_launcher
from deeprc.runtimes import Runtime, register_runtime
from deeprc.schedulers import JobRequest, Scheduler, register_scheduler


@register_scheduler("toy")
class Toy(Scheduler):
    name = "toy"
    prefix = "#TOY"
    job_id_var = "TOY_JOB_ID"
    commands = ("toysub", "toystat", "toydel")

    def directives(self, job: JobRequest) -> list[str]:
        return [self._line(f"--nodes={job.nodes}"), self._line(f"--walltime={job.walltime}"),
                self._line(f"--log={job.output}")]

    def output_name(self, stem: str) -> str:
        return f"{stem}.toylog"

    def submit_command(self, script: str, after: Sequence[str] = ()) -> list[str]:
        return ["toysub", *(["--after", ":".join(after)] if after else []), script]


@register_launcher("toyrun")
class ToyRun(Launcher):
    rp_launch_method = "FORK"

    def __init__(self) -> None:
        super().__init__(name="toyrun", program="toyrun")

    def prefix(self, ranks: int, opts: Mapping[str, object]) -> list[str]:
        return ["toyrun", "-np", str(ranks)]


@register_runtime("toybox")
class ToyBox(Runtime):
    def __init__(self) -> None:
        super().__init__(name="toybox", program="toybox")

    def exec_command(self, image, argv, binds=(), gpus=False, site=None, env=None) -> list[str]:  # noqa: ANN001
        return ["toybox", "run", *[f"--mount={b}" for b in self.all_binds(site, binds)], str(image), "--", *map(str, argv)]
