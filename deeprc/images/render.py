"""Rendering the recipe as an OCI Containerfile and an Apptainer definition (Jinja2 templates in containers/)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from deeprc import __version__
from deeprc.images.recipe import expand, find_context, load_recipe, resolve_args, variants


def default_tag(variant: str) -> str:
    """The image reference when none is given: localhost/deeprc:VERSION-VARIANT."""
    return f"localhost/deeprc:{__version__}-{variant}"


def _dq(value: Any) -> str:
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def render(context: Path, recipe: dict[str, Any], variant: str, fmt: str, args: dict[str, str],
           *, tag: str = "", recipe_path: str = "", bootstrap: str = "docker") -> str:
    """Render the recipe as `containerfile` or `def` text."""
    import jinja2

    spec = recipe["variants"][variant] or {}
    labels = {**recipe["labels"], **spec.get("labels", {})}
    env = {**recipe["env"], **spec.get("env", {})}
    steps = [
        {"name": s["name"], "script": s["script"], "paths": list(s.get("copy", [])), "inputs": bool(s.get("inputs")),
         "run": f"sh /opt/deeprc/steps/{Path(s['script']).name}", "args": list(s.get("args", []))}
        for s in recipe["steps"]
    ]
    in_steps = {a for s in steps for a in s["args"]}
    late = [a for a in args if a not in in_steps and a != "BASE_IMAGE"]  # used by labels only
    template_name = {"containerfile": "Containerfile.j2", "def": "apptainer.def.j2"}[fmt]
    loader = jinja2.FileSystemLoader(str(context / "containers"))
    jenv = jinja2.Environment(loader=loader, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    jenv.filters["dq"] = _dq  # Containerfile strings (the builder expands $VAR, never runs code)
    jenv.filters["sq"] = lambda v: shlex.quote(str(v))  # shell lines (Apptainer's %post and %environment)
    if fmt == "def":  # Apptainer has no build arguments: values are rendered in
        labels = {k: expand(str(v), args) for k, v in labels.items()}
    return jenv.get_template(template_name).render(
        variant=variant, args=args, late_args=late, labels=labels, env=env, steps=steps, user=recipe["user"],
        workdir=recipe["workdir"], entrypoint=recipe["entrypoint"], cmd=recipe["cmd"],
        tag=tag or default_tag(variant), recipe_path=recipe_path, bootstrap=bootstrap)


def write_recipes(context: Path, recipe: dict[str, Any], variant: str, args: dict[str, str], outdir: Path,
                  *, tag: str = "", bootstrap: str = "docker") -> tuple[Path, Path]:
    """Write `Containerfile` and `deeprc.def` for a variant into outdir."""
    outdir.mkdir(parents=True, exist_ok=True)
    files = []
    for fmt, name in (("containerfile", "Containerfile"), ("def", "deeprc.def")):
        path = outdir / name
        shown = os.path.relpath(path, context)
        path.write_text(render(context, recipe, variant, fmt, args, tag=tag, recipe_path=shown, bootstrap=bootstrap))
        files.append(path)
    return files[0], files[1]


def render_defaults(context: Path | None = None) -> list[Path]:
    """Rewrite containers/rendered/<variant>/ with the recipe's default arguments."""
    ctx = (context or find_context()).resolve()
    recipe = load_recipe(ctx)
    written: list[Path] = []
    for variant in variants(recipe):
        args = resolve_args(recipe, variant)
        written += write_recipes(ctx, recipe, variant, args, ctx / "containers" / "rendered" / variant)
    return written
