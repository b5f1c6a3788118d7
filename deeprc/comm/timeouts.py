"""The communicator timeout: argument, else ``DEEPRC_COMM_TIMEOUT``, else 120 s."""

from __future__ import annotations

import os

from deeprc.errors import DeepRCError

DEFAULT_TIMEOUT = 120.0
ENV_VAR = "DEEPRC_COMM_TIMEOUT"


def resolve_timeout(timeout: float | None) -> float:
    """Seconds a collective may wait for its peers before it becomes a DeepRCError."""
    source = "the timeout argument"
    if timeout is None:
        raw = os.environ.get(ENV_VAR)
        if raw in (None, ""):
            return DEFAULT_TIMEOUT
        source = f"environment variable {ENV_VAR}={raw!r}"
        try:
            timeout = float(raw)
        except ValueError:
            raise DeepRCError(
                f"{source}: not a number of seconds. Fix: set {ENV_VAR} to a positive number "
                f"such as 120, or unset it for the default {DEFAULT_TIMEOUT:g} s."
            ) from None
    if not timeout > 0:
        raise DeepRCError(
            f"{source}: the communicator timeout must be a positive number of seconds, got "
            f"{timeout!r}. Fix: pass a value such as 120 (the default)."
        )
    return float(timeout)


def dead_rank_message(rank: int, size: int, op: str, timeout: float, backend: str, detail: str = "") -> str:
    """One paragraph for a collective that lost a peer (``detail``: the backend's own words)."""
    if detail:
        what = f"lost contact with another rank in {op} on the {backend} backend ({detail})"
    else:
        what = f"waited {timeout:g} s in {op} on the {backend} backend and at least one other rank never joined"
    return (
        f"deeprc.comm: rank {rank} of {size} {what}: a rank died, hung or took a different code "
        f"path. Fix: read the other ranks' logs for the first error; if the work is just slow, raise "
        f"the timeout with init(timeout=...) or {ENV_VAR}."
    )
