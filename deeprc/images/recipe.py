"""containers/recipe.yaml: its schema (unknown keys rejected), loading, and build arguments per variant."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from deeprc import __version__
from deeprc.errors import DeepRCError, config_error
from deeprc.validation import validation_error

RECIPE = Path("containers") / "recipe.yaml"


def _scalar(value: Any) -> Any:
    """YAML numbers and booleans (PYTHON_VERSION: 3.11) are build-argument text."""
    return str(value) if isinstance(value, (int, float, bool)) else value


Text = Annotated[str, BeforeValidator(_scalar)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Variant(_Strict):
    """What a variant (cpu, cuda) changes: argument defaults, environment, labels."""

    args: dict[str, Text] = Field(default_factory=dict)
    env: dict[str, Text] = Field(default_factory=dict)
    labels: dict[str, Text] = Field(default_factory=dict)


class Step(_Strict):
    """One RUN of the Containerfile and one block of the def's %post."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    script: str = Field(description="a script under containers/steps/")
    args: list[str] = Field(default_factory=list, description="build arguments the script reads")
    copy_: list[str] = Field(default_factory=list, alias="copy", description="context paths copied before the step")
    inputs: bool = Field(default=False, description="the step sees containers/inputs")


class Recipe(_Strict):
    """containers/recipe.yaml."""

    name: str
    user: str
    workdir: str
    entrypoint: list[str]
    cmd: list[str] = Field(default_factory=list)
    args: dict[str, Text] = Field(default_factory=dict)
    mpi_versions: dict[str, Text] = Field(default_factory=dict)
    variants: dict[str, Variant | None] = Field(min_length=1)
    env: dict[str, Text] = Field(default_factory=dict)
    labels: dict[str, Text] = Field(default_factory=dict)
    steps: list[Step]


def find_context(start: Path | None = None) -> Path:
    """The repository root (holds containers/recipe.yaml): cwd or a parent, else the source tree."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents, Path(__file__).resolve().parents[2]):
        if (folder / RECIPE).is_file():
            return folder
    raise DeepRCError(
        f"no {RECIPE} found in {here} or its parents: `deeprc-deploy build` needs the DeepRC "
        "source tree. Fix: run it from a checkout of the repository or pass --context PATH."
    )


def load_recipe(context: Path) -> dict[str, Any]:
    """Read and check containers/recipe.yaml; the recipe as plain data, defaults filled in."""
    path = context / RECIPE
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise config_error(path, None, f"is not valid YAML{where} ({problem})", "correct the YAML syntax") from exc
    if not isinstance(data, dict):
        raise config_error(path, None, "must be a mapping", "restore the file from the repository")
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, path, Recipe, example="the repository's containers/recipe.yaml",
                               what="recipe") from None
    for i, step in enumerate(recipe.steps):
        for name in step.args:
            if name not in recipe.args:
                raise config_error(path, f"steps[{i}].args", f"names '{name}', which is not under 'args'",
                                   "add it to 'args' or remove it from the step")
        if not (context / step.script).is_file():
            raise config_error(path, f"steps[{i}].script", f"'{step.script}' is not a file",
                               "point it at a script under containers/steps/")
    return recipe.model_dump(by_alias=True)


def variants(recipe: dict[str, Any]) -> list[str]:
    """The recipe's variant names, in recipe order."""
    return list(recipe["variants"])


def resolve_args(recipe: dict[str, Any], variant: str, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Build arguments for a variant: recipe defaults, variant defaults, then overrides."""
    if variant not in recipe["variants"]:
        raise config_error(RECIPE, "variants", f"has no variant '{variant}'", f"use one of {variants(recipe)}")
    args = {k: str(v) for k, v in recipe["args"].items()}
    args.update({k: str(v) for k, v in (recipe["variants"][variant] or {}).get("args", {}).items()})
    for key, value in (overrides or {}).items():
        if key not in args:
            raise config_error(RECIPE, "args", f"has no build argument '{key}'", f"use one of {sorted(args)}")
        args[key] = str(value)
    overrides = overrides or {}
    if "MPI" in overrides and "MPI_VERSION" not in overrides:
        versions = recipe.get("mpi_versions", {})
        if args["MPI"] not in versions:
            raise config_error(RECIPE, "mpi_versions", f"has no version for MPI '{args['MPI']}'",
                               f"pass --build-arg MPI_VERSION=... or use one of {sorted(versions)}")
        args["MPI_VERSION"] = str(versions[args["MPI"]])
    args["DEEPRC_VERSION"] = __version__
    args["VARIANT"] = variant
    return args


def expand(value: str, args: dict[str, str]) -> str:
    """Replace ${NAME} with the build argument NAME."""
    return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), value)


def check_copies(context: Path, recipe: dict[str, Any]) -> None:
    """Every path a step copies exists in the build context."""
    for i, step in enumerate(recipe["steps"]):
        for path in step.get("copy", []):
            if not (context / path).exists():
                raise config_error(context / RECIPE, f"steps[{i}].copy", f"names '{path}', which is not in {context}",
                                   "restore the file or remove it from the step's copy list")
