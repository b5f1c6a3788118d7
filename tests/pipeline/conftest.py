"""Fixtures of the pipeline tests. The shared pilot, the stage functions on the path and the spec writer
live in tests/conftest.py: the hostile-input suite (tests/hostile) runs on the same one pilot."""

from __future__ import annotations


import pytest

# a diamond a -> (b, c) -> d; d also draws a plot, so the report has a stage plot besides the timeline
DIAMOND = [
    {"name": "a", "function": "pipeline_stagefns:write", "ranks": 2, "outputs": ["out.json", "part-1.txt"]},
    {"name": "b", "function": "pipeline_stagefns:write", "depends_on": ["a"], "params": {"sleep": 2}},
    {"name": "c", "function": "pipeline_stagefns:allreduce", "depends_on": ["a"], "ranks": 2, "params": {"sleep": 2}},
    {"name": "d", "function": "pipeline_stagefns:write", "depends_on": ["b", "c"], "params": {"plot": True},
     "outputs": ["out.json", "values.png"]},
]


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
