"""The Radical Pilot releases DeepRC's patches were written and tested against (the version gate).

Standard library only: it is copied with the patches into the hooks folder (deeprc.rp.hooks) and runs
inside RP's own processes. A newer RP: test it, then widen :data:`TESTED` (and pyproject.toml's pin).
"""

from __future__ import annotations

# lower bound inclusive, upper exclusive; pyproject.toml pins the same range. Outside it DeepRC runs RP
# unpatched and says so once.
TESTED = {"radical.pilot": ((1, 103), (1, 104)), "radical.utils": ((1, 103), (1, 104))}


def _release(version: str) -> tuple[int, ...]:
    """(major, minor) of a version string such as '1.103.2' or '1.104.0rc1' (() when unreadable)."""
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(c for c in piece if c.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            return ()
        parts.append(int(digits))
    return tuple(parts)


def installed_versions() -> dict[str, str]:
    """The installed version of each package the patches touch ('' when not installed)."""
    from importlib import metadata

    out = {}
    for name in TESTED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = ""
    return out


def untested(versions: dict[str, str]) -> str:
    """Why the patches must not apply to `versions` ('' when every package is in its tested range)."""
    bad = []
    for name, (low, high) in TESTED.items():
        got = versions.get(name, "")
        if not (low <= _release(got) < high):
            bad.append(f"{name} {got or 'not installed'}")
    if not bad:
        return ""
    span = ", ".join(f"{n} {'.'.join(map(str, lo))}.x" for n, (lo, _) in TESTED.items())
    return (f"DeepRC's Radical Pilot patches (deeprc/rp/patches) were tested on {span}; "
            f"found {', '.join(bad)}: running Radical Pilot unpatched (slower pilot start-up and dispatch, "
            f"more idle CPU). Fix: install the tested range (pip install 'radical.pilot>=1.103,<1.104'), "
            "or set DEEPRC_RP_PATCHES=off to silence this line.")
