"""Name -> class registries of the plug-ins (schedulers, launchers, container runtimes): one lookup, one
error shape. A plug-in registers itself where it is defined (`@SCHEDULERS.register("slurm")`); a new one
needs only its own module, imported before the site that names it is loaded."""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, Mapping, TypeVar

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


class Registry(Generic[T]):
    """Plug-in classes by name."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._classes: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: make the class the plug-in called `name`."""
        def add(cls: type[T]) -> type[T]:
            self._classes[name] = cls
            return cls
        return add

    def create(self, name: str) -> T:
        return create(self._classes, name, self.what)

    def names(self) -> list[str]:
        return list(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def check(self, name: str) -> str:
        """`name` when registered; else a ValueError for the site schema ('... is not allowed ...')."""
        if name in self._classes:
            return name
        near = difflib.get_close_matches(name, list(self._classes), n=1)
        raise ValueError(f"{self.what} {name!r} is not allowed: the registered ones are {', '.join(self._classes)}"
                         + (f" (did you mean {near[0]!r}?)" if near else ""))
