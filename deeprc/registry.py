"""Name -> class registries (launchers, container runtimes): one lookup, one error shape."""

from __future__ import annotations

import difflib
from typing import Mapping, TypeVar

from deeprc.errors import DeepRCError

T = TypeVar("T")


def create(registry: Mapping[str, type[T]], name: str, what: str) -> T:
    """An instance of ``registry[name]``; an unknown name names the nearest valid one."""
    try:
        return registry[name]()
    except KeyError:
        near = difflib.get_close_matches(name, list(registry), n=1)
        hint = f"did you mean '{near[0]}'? " if near else ""
        raise DeepRCError(f"unknown {what} '{name}'. Fix: {hint}use one of {', '.join(registry)}.") from None
