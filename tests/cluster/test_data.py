"""The data engine's shuffle, join and sort with 4 ranks on 2 nodes, row for row against DuckDB."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from cluster_helpers import PY, assert_both_nodes, explain, srun
from dtable_cases import generate_cases, reference
from test_operators import _check_case

from deeprc.data.ipc import from_bytes

OPS = ("shuffle", "join", "sort")


@pytest.fixture(scope="module")
def cases() -> list[dict]:
    return [c for c in generate_cases(6) if c["op"] in OPS]


def test_shuffle_join_sort_across_nodes(cluster: dict, cases: list[dict], tmp_path: Path) -> None:
    (tmp_path / "cases.pkl").write_bytes(pickle.dumps(cases))
    runner = Path(__file__).resolve().parents[1] / "data" / "mpi_runner.py"
    proc = srun(cluster, [PY, str(runner), str(tmp_path / "cases.pkl"), str(tmp_path / "out.pkl")], ntasks=4,
                env={"POLARS_MAX_THREADS": "1", "DEEPRC_COMM_TIMEOUT": "60"})
    assert proc.returncode == 0, explain(proc)
    results = pickle.loads((tmp_path / "out.pkl").read_bytes())
    assert_both_nodes(cluster, results["hosts"], 4)
    assert {c["op"] for c in cases} == set(OPS)
    for case in cases:
        want = reference(case, [from_bytes(b) for b in case["tables"]])
        _check_case(case, results[case["id"]], 4, want)
