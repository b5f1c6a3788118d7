"""DeepRC's one error type: a single paragraph that names the file, the field and the fix."""

from __future__ import annotations

from pathlib import Path


class DeepRCError(Exception):
    """A user-facing error. The CLI prints it as one paragraph and exits non-zero.

    Build it with :func:`config_error` when the problem is in a file, so every message
    has the same shape: where (file and field), what is wrong, and how to fix it.
    """

    exit_code = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


def config_error(file: str | Path | None, field: str | None, problem: str, fix: str) -> DeepRCError:
    """An error about a value in a file: `FILE: field F: PROBLEM. Fix: FIX.`"""
    where = []
    if file is not None:
        where.append(str(file))
    if field:
        where.append(f"field '{field}'")
    prefix = ": ".join(where)
    problem = problem.rstrip(".")
    fix = fix.rstrip(".")
    return DeepRCError(f"{prefix + ': ' if prefix else ''}{problem}. Fix: {fix}.")
