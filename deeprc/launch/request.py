"""One launch request: everything `launch` writes and submits, built once by `render()`.

`--dry-run` prints it, `submit()` writes exactly those files and runs exactly that submit script
(TorchX's dry-run-info pattern): what a user reads is what the scheduler gets. The request is
saved as `RUN/launch/request.json` beside the scripts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deeprc.launch.plan import LaunchPlan

REQUEST_FILE = "request.json"
SUBMIT_FILE = "submit.sh"


@dataclass
class RenderedJob:
    """One batch job of a launch: its script, the jobs it waits for and (batch mode) its stage's rank line."""

    key: str  # "pilot" or the stage name
    script_path: Path
    text: str
    after: list[str] = field(default_factory=list)  # keys of jobs that must succeed first
    var: str = ""  # the submit script's variable holding this job's id
    files: dict[str, str] = field(default_factory=dict)  # more files written beside the script (name -> text)
    rank_line: list[str] | None = None  # batch mode: the argv the job's ranks start with
    submit_line: str = ""  # its line in the submit script (dependencies as `${job_KEY}` variables)


@dataclass
class LaunchRequest:
    """The scripts, extra files and submit script of one launch, and the plan they came from."""

    plan: LaunchPlan
    jobs: list[RenderedJob]
    submit_text: str = ""

    @property
    def submit_path(self) -> Path:
        return self.plan.launch_dir / SUBMIT_FILE

    def files(self) -> list[tuple[Path, str]]:
        """Every file `submit()` writes, in the order the dry run prints them (the submit script last)."""
        out: list[tuple[Path, str]] = []
        for j in self.jobs:
            out.append((j.script_path, j.text))
            out += [(self.plan.launch_dir / name, text) for name, text in j.files.items()]
        out.append((self.submit_path, self.submit_text))
        return out

    def manifest(self) -> dict[str, Any]:
        """The request as data (`RUN/launch/request.json`): where, what, and each job's submit and rank line."""
        p = self.plan
        return {
            "site": p.site.name, "site_file": str(p.site_file), "scheduler": p.site.scheduler, "mode": p.mode,
            "pipeline": p.pipeline.name, "pipeline_file": str(p.pipeline_file), "profile": p.profile,
            "partition": p.partition, "nodes": p.nodes, "walltime": p.walltime, "account": p.account,
            "run_dir": str(p.run_dir), "submit_script": str(self.submit_path),
            "jobs": [{"key": j.key, "script": str(j.script_path), "after": list(j.after), "var": j.var,
                      "submit": j.submit_line, "files": sorted(j.files), "rank_line": j.rank_line}
                     for j in self.jobs],
        }

    def dry_run(self) -> str:
        """The text `launch --dry-run` prints: every file, then the submit script, as `submit()` writes them."""
        parts = []
        for path, text in self.files():
            head = f"### {path}" if path != self.submit_path else f"### {path} (submit, {self.plan.site.scheduler})"
            parts.append(f"{head}\n{text}")
        return "\n".join(parts)

    def write(self) -> None:
        """Write every file (0600, scripts 0700, folder 0700: scripts export the site's environment) and request.json."""
        from deeprc.cloud.keys import write_secret

        launch = self.plan.launch_dir
        launch.mkdir(parents=True, exist_ok=True)
        launch.chmod(0o700)
        (self.plan.run_dir / "logs").mkdir(exist_ok=True)
        scripts = {j.script_path for j in self.jobs} | {self.submit_path}
        for path, text in self.files():
            write_secret(path, text)
            if path in scripts:
                path.chmod(0o700)
        write_secret(launch / REQUEST_FILE, json.dumps(self.manifest(), indent=2) + "\n")

    def submit(self) -> dict[str, Any]:
        """Write the request and run its submit script; return the launch record (also RUN/launch.json)."""
        from deeprc.launch.submit import submit

        return submit(self)
