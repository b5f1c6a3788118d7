"""The import hook that runs a patch on a module right after the module's own code ran."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import types

from .common import Patch, say


class PatchOnImport(importlib.abc.MetaPathFinder):
    """Run a patch on a module right after its own code ran (first import)."""

    def __init__(self, patches: dict[str, Patch]) -> None:
        self.patches = patches

    def find_spec(self, name, path, target=None):  # noqa: ANN001 - importlib's signature
        patch = self.patches.get(name)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module: types.ModuleType) -> None:
            run(module)
            apply(name, module, patch)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def apply(name: str, module: types.ModuleType, patch: Patch) -> None:
    """Run `patch` on `module` once; a patch that fails leaves the module as it was written."""
    if getattr(module, "_deeprc_patched", False):
        return
    try:
        patch(module)
        module._deeprc_patched = True  # type: ignore[attr-defined]
    except Exception as exc:  # never break RP: leave the module as it was written
        say(f"{name} not patched: {exc!r}")
