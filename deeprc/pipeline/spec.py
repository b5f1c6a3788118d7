"""The pipeline spec: YAML -> validated `Pipeline` (defaults and profile applied, DAG checked)."""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from deeprc.errors import DeepRCError, config_error, read_text

STAGE_FIELDS_DOC = "see docs/architecture.md and pipelines/demo.yaml"
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"  # a folder name: no '/', no leading dot, never '.' or '..'
MAX_RANKS = 65536  # one stage; far above any real allocation, far below a fork bomb
MAX_CORES = 4096  # per rank
MAX_GPUS = 64  # per rank


def relative_path(value: str) -> str:
    """A path that stays inside the folder it is relative to (no absolute path, no '..')."""
    parts = Path(value).parts
    if not value or Path(value).is_absolute() or ".." in parts or "\x00" in value:
        raise ValueError(f"{value!r} must be a path relative to the stage's output folder, without '..'")
    return value


class Stage(BaseModel):
    """One stage: what runs, on how many ranks, after which stages."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    function: str | None = None  # "package.module:function"
    command: list[str] | None = None  # argv run by the launcher on `ranks` ranks
    image_command: list[str] | None = None  # argv run inside the site's image
    framework: Literal["python", "torch", "tensorflow", "none"] = "python"
    ranks: int = Field(1, ge=1, le=MAX_RANKS)
    cores_per_rank: int = Field(1, ge=1, le=MAX_CORES)
    gpus_per_rank: float = Field(0, ge=0, le=MAX_GPUS)
    backend: Literal["auto", "mpi", "gloo", "nccl"] = "auto"
    depends_on: list[str] = []
    inputs: list[str] = []  # extra input files (relative to the run folder), hashed for resume
    outputs: list[str] = []  # files the stage must leave in its output folder
    retries: int = Field(0, ge=0, le=100)
    timeout: float | None = Field(None, gt=0, le=366 * 86400)  # seconds per attempt
    params: dict[str, Any] = {}

    @field_validator("function")
    @classmethod
    def _function_shape(cls, v: str | None) -> str | None:
        if v is not None and (":" not in v or not all(v.partition(":")[::2])):
            raise ValueError("must look like 'package.module:function'")
        return v

    @field_validator("outputs")
    @classmethod
    def _outputs_inside(cls, v: list[str]) -> list[str]:
        return [relative_path(o) for o in v]

    @model_validator(mode="after")
    def _one_kind(self) -> "Stage":
        kinds = [k for k in ("function", "command", "image_command") if getattr(self, k)]
        if len(kinds) != 1:
            raise ValueError(
                "give exactly one of 'function', 'command' or 'image_command' "
                f"(found {', '.join(kinds) or 'none'})"
            )
        return self

    @property
    def kind(self) -> str:
        """'function', 'command' or 'image_command'."""
        return "function" if self.function else "command" if self.command else "image_command"

    @property
    def executable(self) -> bool:
        """True when the stage runs as a fresh process (not as a warm function task)."""
        return self.kind != "function" or self.framework == "tensorflow"


class Pipeline(BaseModel):
    """A validated pipeline with its stages in a topological order."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    description: str = ""
    defaults: dict[str, Any] = {}
    stages: list[Stage]
    profiles: dict[str, dict[str, dict[str, Any]]] = {}
    profile: str = "full"  # set by load_pipeline, recorded in spec.yaml
    source: str = ""  # the file it was read from

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise DeepRCError(f"pipeline '{self.name}' has no stage '{name}'. Fix: use one of {', '.join(self.names)}.")

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def dependants(self, name: str) -> set[str]:
        """Every stage that depends on `name`, directly or not."""
        out: set[str] = set()
        frontier = [name]
        while frontier:
            n = frontier.pop()
            for s in self.stages:
                if n in s.depends_on and s.name not in out:
                    out.add(s.name)
                    frontier.append(s.name)
        return out

    def to_yaml(self) -> str:
        """The spec as run: defaults and the profile already applied."""
        data = self.model_dump(exclude={"source", "defaults", "profiles"})
        return yaml.safe_dump(data, sort_keys=False)

    @classmethod
    def from_run_yaml(cls, path: Path) -> "Pipeline":
        """Read a run folder's spec.yaml (written by `to_yaml`)."""
        try:
            return cls.model_validate(yaml.safe_load(Path(path).read_text()))
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            raise config_error(path, None, f"cannot read the spec of this run ({exc})", "rerun `deeprc-deploy run` to rewrite it") from exc


PROFILE_KEYS = {"params", "ranks", "cores_per_rank", "gpus_per_rank", "retries", "timeout", "backend", "outputs"}
TOP_KEYS = ["name", "description", "defaults", "stages", "profiles", "profile"]


def _nearest(word: str, options: list[str]) -> str:
    match = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    return f"did you mean '{match[0]}'?" if match else f"valid keys: {', '.join(options)}"


def _loc(loc: tuple, data: dict) -> str:
    """Turn a pydantic location into 'stages[2].function', naming stages when possible."""
    out = ""
    node: Any = data
    for part in loc:
        if isinstance(part, int):
            label = f"[{part}]"
            if isinstance(node, list) and part < len(node) and isinstance(node[part], dict) and "name" in node[part]:
                label = f"[{part}] ({node[part]['name']})"
            out += label
            node = node[part] if isinstance(node, list) and part < len(node) else None
        else:
            out += ("." if out else "") + str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out.replace(" (", "(").replace("](", "] (")


def _raise_validation(path: Path, exc: ValidationError, data: dict) -> None:
    err = exc.errors()[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-after")))
    field = _loc(loc, data)
    if err["type"] == "extra_forbidden":
        key = str(loc[-1])
        model = Stage if "stages" in [str(p) for p in loc[:-1]] else Pipeline
        valid = [k for k in model.model_fields if k not in ("source",)]
        raise config_error(path, field, f"unknown key '{key}'", f"{_nearest(key, valid)} (remove or rename it)")
    if err["type"] == "missing":
        raise config_error(path, field, "this required field is missing", "add it")
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "string_pattern_mismatch":
        raise config_error(path, field, f"{err.get('input')!r} is not a usable name (it becomes a folder name)",
                           "use up to 100 letters, digits, '_', '.' and '-', starting with a letter or digit")
    if err["type"] in ("less_than_equal", "greater_than_equal", "greater_than"):
        msg = f"{msg} (got {err.get('input')!r})"
    raise config_error(path, field or "(top level)", msg, f"correct the value ({STAGE_FIELDS_DOC})")


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _check_dag(path: Path, stages: list[Stage]) -> list[Stage]:
    """Reject unknown dependencies and cycles; return the stages in a topological order."""
    names = [s.name for s in stages]
    seen: set[str] = set()
    for i, s in enumerate(stages):
        if s.name in seen:
            raise config_error(path, f"stages[{i}].name", f"stage name '{s.name}' is used twice", "give every stage its own name")
        seen.add(s.name)
    for i, s in enumerate(stages):
        for j, d in enumerate(s.depends_on):
            if d not in seen:
                raise config_error(
                    path, f"stages[{i}] ({s.name}).depends_on[{j}]", f"unknown stage '{d}'",
                    f"{_nearest(d, names).replace('valid keys', 'stages are')} (depend on a stage defined in this file)",
                )
            if d == s.name:
                raise config_error(path, f"stages[{i}] ({s.name}).depends_on", "a stage cannot depend on itself", f"remove '{d}'")
    by_name = {s.name: s for s in stages}
    order: list[Stage] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(n: str, trail: list[str]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            cycle = trail[trail.index(n):] + [n]
            raise config_error(
                path, f"stages ({n}).depends_on", f"dependency cycle {' -> '.join(cycle)}",
                "remove one of these depends_on entries so the stages form a DAG",
            )
        state[n] = 1
        for d in by_name[n].depends_on:
            visit(d, trail + [n])
        state[n] = 2
        order.append(by_name[n])

    for n in names:
        visit(n, [])
    return order


def parse_pipeline(data: Any, path: str | Path = "<pipeline>", profile: str = "full") -> Pipeline:
    """Validate a loaded YAML document and apply its defaults and the profile."""
    path = Path(path)
    if not isinstance(data, dict):
        raise config_error(path, None, "a pipeline must be a YAML mapping", "start the file with 'name:' and 'stages:'")
    # `x-...` keys hold shared values for YAML anchors (as in compose files); they are not read
    data = {k: v for k, v in data.items() if not str(k).startswith("x-")}
    for key in data:
        if key not in TOP_KEYS:
            raise config_error(path, str(key), f"unknown key '{key}'", f"{_nearest(str(key), TOP_KEYS)} (remove or rename it)")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise config_error(path, "defaults", "must be a mapping of stage fields", "e.g. 'defaults: {retries: 1}'")
    stage_keys = [k for k in Stage.model_fields]
    for key in defaults:
        if key not in stage_keys or key == "name":
            raise config_error(path, f"defaults.{key}", f"unknown stage field '{key}'", _nearest(str(key), stage_keys))
    raw_stages = data.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise config_error(path, "stages", "must be a non-empty list of stages", "add at least one stage with 'name' and 'function'")
    profiles = data.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise config_error(path, "profiles", "must map a profile name to per-stage overrides", "e.g. 'profiles: {small: {train: {params: {epochs: 1}}}}'")
    if profile not in profiles and profile != "full":
        raise config_error(path, "profiles", f"no profile '{profile}'", f"use one of: full, {', '.join(profiles) or '(none defined)'}")
    names = [s.get("name") for s in raw_stages if isinstance(s, dict)]
    for pname, over in profiles.items():
        if not isinstance(over, dict):
            raise config_error(path, f"profiles.{pname}", "must map stage names to overrides", "e.g. 'small: {train: {params: {epochs: 1}}}'")
        for sname, fields in over.items():
            if sname not in names:
                raise config_error(path, f"profiles.{pname}.{sname}", f"unknown stage '{sname}'", _nearest(str(sname), [n for n in names if n]))
            if not isinstance(fields, dict):
                raise config_error(path, f"profiles.{pname}.{sname}", "must be a mapping", "e.g. '{params: {epochs: 1}, ranks: 1}'")
            for key in fields:
                if key not in PROFILE_KEYS:
                    raise config_error(path, f"profiles.{pname}.{sname}.{key}", f"'{key}' cannot be set by a profile",
                                       _nearest(str(key), sorted(PROFILE_KEYS)))
    merged = []
    for s in raw_stages:
        if not isinstance(s, dict):
            merged.append(s)
            continue
        m = _merge(defaults, s)
        over = profiles.get(profile, {}).get(s.get("name"), {})
        merged.append(_merge(m, over))
    doc = {k: v for k, v in data.items() if k != "stages"}
    doc["stages"] = merged
    doc["profile"] = profile
    try:
        pipe = Pipeline.model_validate(doc)
    except ValidationError as exc:
        _raise_validation(path, exc, doc)
    pipe.stages = _check_dag(path, pipe.stages)
    pipe.source = str(path)
    return pipe


def load_pipeline(path: str | Path, profile: str = "full") -> Pipeline:
    """Read and validate a pipeline YAML file."""
    path = Path(path)
    if not path.is_file():
        raise config_error(path, None, "pipeline file not found", "pass the path of a pipeline YAML, e.g. pipelines/demo.yaml")
    try:
        data = yaml.safe_load(read_text(path, "pipeline file"))
    except yaml.YAMLError as exc:
        raise config_error(path, None, f"not valid YAML ({str(exc).splitlines()[0]})", "fix the YAML syntax") from exc
    return parse_pipeline(data, path, profile)
