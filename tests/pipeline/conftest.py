"""Shared fixtures of the pipeline tests: ONE Radical Pilot session + pilot for all of them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def stagefns_on_path():
    """Make tests/pipeline/pipeline_stagefns.py importable in fresh processes and on RP workers."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), *([old] if old else [])])
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    yield
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


@pytest.fixture(scope="session")
def pilot(stagefns_on_path, tmp_path_factory):
    """A started local.localhost pilot (8 virtual cores, a 4-rank raptor MPI worker)."""
    from deeprc.pipeline.pilot import Pilot, _own_pids

    base = tmp_path_factory.mktemp("rp")
    p = Pilot(cores=8, worker_ranks=4, base=base).start()
    yield p
    p.close()
    assert not _own_pids(base), "the closed pilot left processes running (raptor workers?)"


def _write_spec(folder: Path, stages: list[dict], name: str = "t", **extra) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "stages": stages, **extra}, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def write_spec():
    """write_spec(folder, stages, name="t") -> path of a pipeline YAML."""
    return _write_spec
