"""DeepRC's own environment variables, checked once where a command starts (one clear error, not a
traceback deep inside a stage)."""

from __future__ import annotations

import os

from deeprc.errors import DeepRCError

DATA_KERNELS = ("auto", "duckdb", "polars", "arrow")


def env_int(name: str, default: int, minimum: int = 1) -> int:
    """`$name` as a whole number >= minimum (default when unset or empty)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise DeepRCError(f"environment variable {name}={raw!r} is not a whole number >= {minimum}. "
                          f"Fix: set it to e.g. {default}, or unset it for the default ({default}).")
    return value


def env_choice(name: str, choices: tuple[str, ...]) -> str:
    """`$name` as one of `choices` (the first when unset or empty)."""
    value = os.environ.get(name, "").strip() or choices[0]
    if value not in choices:
        raise DeepRCError(f"environment variable {name}={value!r} is unknown. Fix: set it to one of "
                          f"{', '.join(choices)}, or unset it.")
    return value


def check_rp_patches() -> None:
    """A clear error for a malformed `DEEPRC_RP_PATCHES` or `DEEPRC_RP_SCHED_SLEEP` (the hook itself
    runs inside RP's processes, where nobody would see one)."""
    from deeprc.rp.patches import GROUPS, wanted_groups

    unknown = sorted(wanted_groups() - set(GROUPS))
    if unknown:
        raise DeepRCError(
            f"environment variable DEEPRC_RP_PATCHES={os.environ.get('DEEPRC_RP_PATCHES')!r} names unknown "
            f"group(s) {', '.join(unknown)}. Fix: use a comma list of {', '.join(GROUPS)}, or `off` to run "
            "Radical Pilot unpatched.")
    sleep = os.environ.get("DEEPRC_RP_SCHED_SLEEP", "").strip()
    if sleep:
        try:
            float(sleep)
        except ValueError:
            raise DeepRCError(
                f"environment variable DEEPRC_RP_SCHED_SLEEP={sleep!r} is not a number of seconds. Fix: set it to "
                "the agent scheduler's longest idle sleep (e.g. 0.002), or 0.1 for RP's own.") from None


def check_environment() -> None:
    """Validate every DEEPRC_* setting a command may read later (in this process or its stages)."""
    from deeprc.comm.timeouts import resolve_timeout

    resolve_timeout(None)
    env_choice("DEEPRC_DATA_KERNEL", DATA_KERNELS)
    env_choice("DEEPRC_PILOT_OVERLAP", ("1", "0"))
    check_rp_patches()
    env_int("DEEPRC_DATA_CHUNK_BYTES", 16 << 20)
    env_int("DEEPRC_MPI_BLOCKING_MAX", 4 << 20, minimum=0)
    for name in ("DEEPRC_SITES_PATH",):
        for folder in filter(None, os.environ.get(name, "").split(":")):
            if os.path.exists(folder) and not os.path.isdir(folder):
                raise DeepRCError(f"environment variable {name}: {folder} is not a folder. Fix: list folders of "
                                  "site YAML files, separated by ':'.")
