"""What the pilot starts for each stage, inside the site's image when the site has one.

One object builds it for the runner (Radical Pilot task descriptions) and for `launch --dry-run`, so
the dry run shows what the pilot really starts:

- the warm raptor worker's ranks run `radical-pilot-raptor-worker` inside the image (it keeps torch,
  TensorFlow and the stage modules imported there); function stages run on it;
- executable stages (TensorFlow multi-worker, commands) run `python -m deeprc.pipeline.entry --task
  BLOB` inside the image, which applies the task's environment and execs the stage's own argv;
- on a site without a container runtime both run with this Python, as before.

Radical Pilot writes a task's executable and arguments unquoted into its task scripts, so the
runtime's words (binds and image path from the site config) go only into small shell wrappers in
the pilot's folder (`in-image.sh`, `in-image-gpu.sh`, `raptor-worker.sh`), each one line
`exec RUNTIME ... IMAGE PROGRAM "$@"` with every word shell-quoted. The Radical Pilot agent and the
raptor master stay on the host (docs/architecture.md, "Stages inside the image").
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from deeprc.pipeline.commands import IMAGE_PYTHON, has_image, stage_argv
from deeprc.pipeline.spec import Pipeline, Stage
from deeprc.pipeline.taskenv import check_rp_word
from deeprc.sites.schema import Site

WORKER_PROGRAM = "radical-pilot-raptor-worker"  # what RP's raptor master starts for each worker rank
TASK_MARK = "<TASK: environment, argv and log of the attempt, packed by deeprc.pipeline.taskenv>"


@dataclass
class PilotTasks:
    """The pilot's per-stage programs for `site`, with wrappers in `folder` (the pilot's base)."""

    site: Site | None
    run_dir: Path
    folder: Path
    worker_gpus: bool = False  # a function stage asks for GPUs: the worker's ranks then see them

    @property
    def imaged(self) -> bool:
        return has_image(self.site)

    def binds(self) -> list[str]:
        """The run folder, and the pilot's folder when it lies elsewhere (the worker's sandbox and hooks)."""
        out = [str(self.run_dir)]
        if not str(self.folder).startswith(str(self.run_dir) + os.sep):
            out.append(str(self.folder))
        return out

    def prefix(self, gpus: bool = False) -> list[str]:
        """The runtime's words before the program (`ch-run --set-env -b RUN IMAGE --`, `apptainer exec ...`)."""
        from deeprc.runtimes import get_runtime

        assert self.site is not None
        c = self.site.container
        return get_runtime(c.runtime).exec_command(c.image, [], binds=self.binds(), gpus=gpus, site=self.site,
                                                    env=self.site.job_env())

    def wrappers(self) -> dict[str, str]:
        """File name -> text of the wrappers RP runs (none without an image)."""
        if not self.imaged:
            return {}
        head = ("#!/bin/sh\n# DeepRC (deeprc.pipeline.pilot_tasks): run the program inside the site's image\n"
                'USER="${USER:-$(id -un)}"; export USER  # ch-run refuses to start without it\n')
        return {"in-image.sh": head + "exec " + shlex.join(self.prefix()) + ' "$@"\n',
                "in-image-gpu.sh": head + "exec " + shlex.join(self.prefix(gpus=True)) + ' "$@"\n',
                "raptor-worker.sh": head + "exec " + shlex.join(self.prefix(self.worker_gpus)) + f' {WORKER_PROGRAM} "$@"\n'}

    def write(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, text in self.wrappers().items():
            path = self.folder / name
            path.write_text(text)
            path.chmod(0o755)

    def _wrapper(self, name: str, check: bool = True) -> str:
        path = str(self.folder / name)  # the dry run shows it before `$VAR`s in the run folder are expanded
        return check_rp_word(path, "the pilot's folder") if check else path

    def worker_executable(self, check: bool = True) -> str | None:
        """The raptor worker's executable (None: RP's own `radical-pilot-raptor-worker` on the host)."""
        return self._wrapper("raptor-worker.sh", check) if self.imaged else None

    def stage_argv(self, stage: Stage, attempt: int) -> list[str]:
        """What one rank of an executable stage finally runs (the task blob's argv)."""
        return stage_argv(self.run_dir, stage, attempt, self.site, wrap_image=not self.imaged,
                          python=IMAGE_PYTHON if self.imaged else None)

    def executable(self, stage: Stage, blob: str, check: bool = True) -> tuple[str, list[str]]:
        """(executable, arguments) of an executable stage's RP task; `blob` carries env, argv and log."""
        entry = ["-m", "deeprc.pipeline.entry", "--task", blob]
        if not self.imaged:
            return (check_rp_word(sys.executable, "this Python") if check else sys.executable), entry
        return self._wrapper("in-image-gpu.sh" if stage.gpus_per_rank else "in-image.sh", check), [IMAGE_PYTHON, *entry]

    def worker_env(self, hooks: Path | None) -> dict[str, str]:
        """Variables the worker's ranks need inside the image: RP's hooks only on PYTHONPATH (never the
        host's site-packages), and a writable radical.utils base (the image's $HOME is read-only)."""
        return {"PYTHONPATH": str(hooks) if hooks else "", "RADICAL_BASE": str(self.folder)}

    def describe(self, pipe: Pipeline, launcher: str, worker_ranks: int, attempt: int = 1) -> list[str]:
        """The dry run's account of what the pilot starts, one entry per stage."""
        out = [f"# launch method {launcher}; every word below is what the runner hands Radical Pilot"]
        for name, text in self.wrappers().items():
            out.append(f"{self.folder / name}:")
            out += ["    " + line for line in text.rstrip("\n").splitlines()]
        worker = self.worker_executable(check=False) or WORKER_PROGRAM
        out.append(f"warm worker: {worker_ranks} rank(s): {worker} RAPTOR_FILE MPIWorker MASTER_ID")
        for st in pipe.stages:
            if st.executable:
                exe, args = self.executable(st, TASK_MARK, check=False)
                out.append(f"stage {st.name}: executable task, {st.ranks} rank(s): {shlex.join([exe, *args])}")
                out.append(f"    then execs: {shlex.join(self.stage_argv(st, attempt))}")
            else:
                where = f"the warm worker ({worker}, inside the image)" if self.imaged else "the warm worker"
                out.append(f"stage {st.name}: function task on {st.ranks} rank(s) of {where}: "
                           f"deeprc.pipeline.entry.run_in_worker({st.function})")
        return out
