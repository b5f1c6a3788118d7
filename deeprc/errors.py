"""DeepRC's one error type: a single paragraph that names the file, the field and the fix."""

from __future__ import annotations

from pathlib import Path


ERROR_MARK = "deeprc error: "  # how a stage's log marks its one-paragraph DeepRC error (the CLI repeats it)


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


def read_text(path: str | Path, what: str = "file") -> str:
    """A config or run file's text; a directory, an unreadable or a binary file becomes one DeepRCError."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except IsADirectoryError:
        raise config_error(p, None, f"this {what} is a directory", f"pass the path of the {what} itself") from None
    except FileNotFoundError:
        raise config_error(p, None, f"this {what} does not exist", "check the path") from None
    except OSError as exc:
        raise config_error(p, None, f"cannot read this {what} ({exc.strerror or exc})",
                           "check the path and its permissions") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise config_error(p, None, f"this {what} is not UTF-8 text (a binary file?)",
                           f"pass a YAML/JSON/CSV text {what}") from None
    if "\x00" in text:
        raise config_error(p, None, f"this {what} contains NUL bytes (a binary file?)", f"pass a text {what}")
    return text


def os_error(exc: OSError) -> DeepRCError:
    """An operating-system error at the command line as one paragraph naming the path."""
    import errno

    where = exc.filename or "a file"
    fixes = {
        errno.EACCES: "choose a folder you may write to, or fix its permissions",
        errno.EPERM: "choose a folder you may write to, or fix its permissions",
        errno.EROFS: "choose a folder on a writable filesystem (e.g. --run-dir on scratch)",
        errno.ENOTDIR: "a part of this path is a file, not a folder: choose another path",
        errno.EISDIR: "pass the path of a file, not a folder",
        errno.ENOENT: "check the path",
        errno.ENOSPC: "free space on that filesystem or choose another one",
        errno.EEXIST: "remove it or choose another path",
    }
    fix = fixes.get(exc.errno or -1, "check the path and its permissions")
    return DeepRCError(f"{where}: {exc.strerror or exc}. Fix: {fix}.")
