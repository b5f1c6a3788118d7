"""Shared helpers for the workload tests: a one-rank communicator and StageContext factory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import pytest

from deeprc.stage import StageContext


@pytest.fixture(scope="session")
def comm1() -> Any:
    """A real one-rank DeepRC communicator."""
    import deeprc.comm

    return deeprc.comm.init()


@pytest.fixture(scope="session")
def make_ctx(comm1: Any) -> Callable[..., StageContext]:
    def make(run: Path, name: str, params: dict, inputs: dict[str, Path] | None = None,
             profile: str = "small") -> StageContext:
        return StageContext(name=name, comm=comm1, params=params, inputs=inputs or {}, outdir=run / name,
                            run_dir=run, profile=profile, seed=0, log=logging.getLogger(f"test.{name}"))

    return make
