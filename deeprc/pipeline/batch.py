"""Runner `batch`, the baseline: one fresh launcher call per stage, one stage at a time (or, with
`cores`, independent stages side by side within that many cores, as a scheduler packs jobs).

(The Slurm flavour, one job per stage chained with afterok, is `deeprc-deploy launch --mode batch`;
inside each of those jobs this runner runs the job's stage with `--stage`.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Any

from deeprc.pipeline.commands import stage_env, stage_rank_line
from deeprc.pipeline.engine import Completion
from deeprc.pipeline.runfolder import RunFolder
from deeprc.pipeline.spec import Pipeline, Stage
from deeprc.pipeline.taskenv import site_secrets

if TYPE_CHECKING:
    from deeprc.sites import Site


class BatchBackend:
    """Start each stage attempt as `mpiexec -n RANKS python -m deeprc.pipeline.entry ...`."""

    name = "batch"

    def __init__(self, site: Site | None = None, cores: int | None = None, environ: dict[str, str] | None = None,
                 rank_lines: dict[str, list[str]] | None = None) -> None:
        self.site = site
        self.environ = environ  # the stages' base environment (None: this process's, as it is at each start)
        self.rank_lines = rank_lines or {}  # stage -> the launcher line a batch job script hands over
        self.capacity = None if cores else 1
        self.core_budget = cores or None
        self.procs: dict[str, tuple[str, subprocess.Popen, Any]] = {}  # task -> (stage, proc, logfile)
        self._n = 0
        self.run: RunFolder | None = None

    def start(self, run: RunFolder, pipe: Pipeline) -> None:
        self.run = run

    def submit(self, stage: Stage, attempt: int) -> str:
        assert self.run is not None
        self._n += 1
        task = f"batch.{self._n:04d}"
        argv = self.rank_lines.get(stage.name) or stage_rank_line(self.run.path, stage, attempt, self.site)
        env = {**(os.environ if self.environ is None else self.environ), **stage_env(self.run.path, stage, attempt),
               "DEEPRC_TASK": task,
               **site_secrets(self.site)}  # handed to the process in memory, byte for byte
        self.run.stage_dir(stage.name).mkdir(parents=True, exist_ok=True)
        log = open(self.run.log_path(stage.name), "a", buffering=1)
        log.write(f"--- attempt {attempt} ({task}): {' '.join(argv)}\n")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                cwd=self.run.stage_dir(stage.name))
        self.procs[task] = (stage.name, proc, log)
        if stage.kind != "function":  # function stages log their own start (deeprc.pipeline.entry)
            self.run.event(stage.name, task, "started")
        return task

    def poll(self, timeout: float) -> list[Completion]:
        deadline = time.time() + timeout
        while True:
            out = []
            for task, (stage, proc, log) in list(self.procs.items()):
                rc = proc.poll()
                if rc is not None:
                    log.close()
                    del self.procs[task]
                    out.append(Completion(stage, task, rc == 0, "" if rc == 0 else f"exit code {rc}"))
            if out or time.time() >= deadline:
                return out
            time.sleep(0.02)

    def cancel(self, task: str) -> None:
        if task in self.procs:
            _stop(self.procs[task][1])

    def cancel_all(self) -> None:
        for task, (_, proc, log) in list(self.procs.items()):
            _stop(proc)
            log.close()
        self.procs.clear()

    def close(self) -> None:
        self.cancel_all()


def _stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the attempt's process group, SIGKILL it after `grace` seconds."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
