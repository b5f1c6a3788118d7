"""Hostile values and the checks every hostile-input test makes (markers, files outside, one paragraph)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def values(marks: Path) -> dict[str, str]:
    """Config values a careless or malicious colleague might write; executing any of them leaves a marker."""
    return {
        "subst": f"x $(touch {marks}/subst) y",
        "ticks": f"`touch {marks}/ticks`",
        "semi": f"a; touch {marks}/semi",
        "quotes": "Bob's \"best\" model",
        "newline": f"line1\nline2 $(touch {marks}/newline)",
        "dollar": "$HOME ${PATH} $$ $1",
        "backslash": 'a\\"b\\ c\\',
        "unicode": "Zürich — 東京 ✓",
        "braces": "{run_dir} {0} %s %(x)s",
        "dashes": "--help -rf /",
    }


def no_marks(marks: Path) -> None:
    left = sorted(p.name for p in marks.iterdir()) if marks.is_dir() else []
    assert not left, f"a config value was executed by a shell: markers {left}"


def snapshot(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """Every file under `root` (outside `skip`) with a hash of its bytes and mode."""
    out = {}
    for p in sorted(root.rglob("*")):
        if any(p == s or s in p.parents for s in skip) or not p.is_file():
            continue
        out[str(p)] = hashlib.sha256(p.read_bytes() + oct(p.stat().st_mode).encode()).hexdigest()
    return out


def files_containing(root: Path, secret: str) -> list[str]:
    """Files under `root` whose bytes contain `secret`, or its first word (a writer may have quoted the rest)."""
    needles = {secret.encode(), secret.split("-$")[0].split()[0].encode()}
    hits = []
    for p in root.rglob("*"):
        try:
            data = p.read_bytes() if p.is_file() and not p.is_symlink() else b""
        except OSError:
            continue
        if any(n in data for n in needles):
            hits.append(str(p))
    return sorted(hits)


def one_paragraph(stderr: str, *words: str) -> str:
    """A DeepRC error: one `error: ... Fix: ...` paragraph naming `words`, no traceback."""
    text = stderr.strip()
    assert "Traceback" not in text, text
    assert text.startswith("error: ") and "\n" not in text, f"not one paragraph:\n{text}"
    assert "Fix:" in text, text
    for w in words:
        assert w in text, f"{w!r} not in: {text}"
    return text
