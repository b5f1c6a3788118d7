"""Make this folder's helper modules importable (pytest runs in importlib mode)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fixed_site_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Site paths use $USER, $SCRATCH, ...; fix them so rendered scripts are the same everywhere."""
    for k, v in {"USER": "deeprc", "SCRATCH": "/scratch/deeprc", "PSCRATCH": "/pscratch/sd/d/deeprc",
                 "MEMBERWORK": "/lustre/orion/scratch/deeprc"}.items():
        monkeypatch.setenv(k, v)
