"""The contract between the runtime and a stage's code.

A Python stage is a function ``fn(ctx: StageContext) -> dict``. It runs on every rank of
the stage; it reads its upstream outputs from ``ctx.inputs``, writes its own under
``ctx.outdir`` (rank 0 writes shared files, each rank may write ``part-<rank>`` files) and
returns JSON-able metrics (rank 0's return value is the one recorded). It never asks which
runner, scheduler or container started it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass
class StageContext:
    """What a stage function gets from the runtime."""

    name: str
    comm: Any  # deeprc.comm.Communicator
    params: dict[str, Any]
    inputs: dict[str, Path]  # upstream stage name -> its output folder
    outdir: Path
    run_dir: Path
    profile: str = "full"  # "full" or "small" (tiny sizes for tests)
    seed: int = 0
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("deeprc.stage"))

    @property
    def rank(self) -> int:
        return self.comm.rank

    @property
    def size(self) -> int:
        return self.comm.size


StageFn = Callable[[StageContext], dict]


def resolve(target: str) -> StageFn:
    """Import ``"package.module:function"`` and return the function."""
    import importlib

    from deeprc.errors import DeepRCError

    module_name, _, attr = target.partition(":")
    if not attr:
        raise DeepRCError(f"stage function '{target}' must look like 'package.module:function'.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DeepRCError(f"stage function '{target}': cannot import {module_name} ({exc}).") from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise DeepRCError(f"stage function '{target}': {module_name} has no '{attr}'.") from exc


def check_function(target: str) -> str | None:
    """Why ``"package.module:function"`` cannot be run here (None when it can), found without running the
    module: the module must be on the path and (when its source is Python) bind the function at top level."""
    import ast
    import importlib.util

    module_name, _, attr = target.partition(":")
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:
        return f"cannot find module '{module_name}' ({exc})"
    if spec is None:
        return f"no module named '{module_name}' on this Python's path"
    if not (spec.origin and spec.origin.endswith(".py")):
        return None
    try:
        tree = ast.parse(open(spec.origin, encoding="utf-8").read())
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError) as exc:
        return f"module '{module_name}' ({spec.origin}) cannot be read ({exc})"
    bound: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    if attr in bound or "*" in bound or "__getattr__" in bound:
        return None
    return f"module '{module_name}' ({spec.origin}) defines no '{attr}'"
