"""Shared fixtures of the pipeline tests: ONE Radical Pilot session + pilot for all of them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent

# a diamond a -> (b, c) -> d; d also draws a plot, so the report has a stage plot besides the timeline
DIAMOND = [
    {"name": "a", "function": "pipeline_stagefns:write", "ranks": 2, "outputs": ["out.json", "part-1.txt"]},
    {"name": "b", "function": "pipeline_stagefns:write", "depends_on": ["a"], "params": {"sleep": 2}},
    {"name": "c", "function": "pipeline_stagefns:allreduce", "depends_on": ["a"], "ranks": 2, "params": {"sleep": 2}},
    {"name": "d", "function": "pipeline_stagefns:write", "depends_on": ["b", "c"], "params": {"plot": True},
     "outputs": ["out.json", "values.png"]},
]


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


@pytest.fixture(scope="session")
def diamond() -> list[dict]:
    """The DIAMOND stages (a fresh copy)."""
    import copy

    return copy.deepcopy(DIAMOND)


@pytest.fixture(scope="session")
def diamond_pilot(pilot, tmp_path_factory, write_spec):
    """DIAMOND run once through the shared pilot: (spec, result, run folder, seconds)."""
    import time

    from deeprc.pipeline.cli import run_pipeline

    folder = tmp_path_factory.mktemp("diamond")
    spec = write_spec(folder, DIAMOND)
    t0 = time.time()
    # a 4-core budget: b (1 rank) and c (2 ranks) fit side by side, whatever this machine has
    result, run_dir = run_pipeline(spec, runner="pilot", run_dir=folder / "run", pilot=pilot, quiet=True, cores=4)
    return spec, result, run_dir, time.time() - t0
