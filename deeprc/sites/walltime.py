"""Walltime strings (Slurm/PBS style) to seconds and back."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_walltime(text: str | int) -> int:
    """Seconds in a walltime: `D-HH:MM:SS`, `HH:MM:SS`, `MM:SS`, `MM` (minutes) or `2h`/`30m`/`1d`.

    Raises ValueError on anything else.
    """
    if isinstance(text, bool):
        raise ValueError(f"not a walltime: {text!r}")
    if isinstance(text, int):
        return text * 60
    s = str(text).strip()
    m = re.fullmatch(r"(\d+)\s*([smhd])", s)
    if m:
        return int(m.group(1)) * _UNITS[m.group(2)]
    days = 0
    if "-" in s:
        d, _, s = s.partition("-")
        if not d.isdigit():
            raise ValueError(f"not a walltime: {text!r}")
        days = int(d)
    parts = s.split(":")
    if not parts or not all(p.isdigit() for p in parts) or len(parts) > 3:
        raise ValueError(f"not a walltime: {text!r}")
    nums = [int(p) for p in parts]
    if len(nums) == 1:
        secs = nums[0] * 60
    elif len(nums) == 2:
        secs = nums[0] * 60 + nums[1]
    else:
        secs = nums[0] * 3600 + nums[1] * 60 + nums[2]
    return days * 86400 + secs


def format_walltime(seconds: int) -> str:
    """`HH:MM:SS` (hours may exceed 24), the form every scheduler here accepts."""
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}"
