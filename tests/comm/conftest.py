"""Helpers for the communicator tests: start real ranks with mpiexec or srun."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

PY = sys.executable
MPIEXEC = str(Path(PY).parent / "mpiexec")
SELFTEST = [PY, "-m", "deeprc.comm.selftest"]


@dataclass
class Ran:
    rc: int
    out: str
    err: str
    seconds: float


def run(cmd: list[str], env: dict[str, str], timeout: float = 240) -> Ran:
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return Ran(p.returncode, p.stdout, p.stderr, time.monotonic() - t0)


def mpiexec(ranks: int, argv: list[str]) -> list[str]:
    return [MPIEXEC, "-n", str(ranks), "--oversubscribe", "--enable-recovery", *argv]


def srun(ranks: int, argv: list[str], mpi: str = "none") -> list[str]:
    return ["srun", f"--ntasks={ranks}", "--overcommit", "--kill-on-bad-exit=0", f"--mpi={mpi}", *argv]


@pytest.fixture(scope="session")
def rank_env(mpi_env: dict[str, str]) -> dict[str, str]:
    """Open MPI as root, oversubscribed, no inherited comm timeout."""
    env = dict(mpi_env)
    env.pop("DEEPRC_COMM_TIMEOUT", None)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2]) + os.pathsep + env.get("PYTHONPATH", "")
    return env
