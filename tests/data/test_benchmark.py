"""benchmarks/dataframe.py runs end to end on tiny data and every engine finds the same join rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_benchmark_runs_and_engines_agree(tmp_path: Path, mpi_env: dict) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "dataframe.py"), "--rows", "30000", "--ranks", "2",
                           "--repeats", "1", "--json", str(out)], capture_output=True, text=True, env=mpi_env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads(out.read_text())
    assert [(r["engine"], r["ranks"]) for r in results] == [("duckdb", 1), ("polars", 1), ("deeprc/auto", 1),
                                                             ("deeprc/auto", 2)]
    assert len({r["join_rows"] for r in results}) == 1 and results[0]["join_rows"] > 20000
    assert all(r["join_s"] > 0 and r["sort_s"] > 0 and r["peak_mb"] > 0 for r in results)
    assert 0 < results[-1]["join_shuffle_s"] <= results[-1]["join_s"]
    assert "shuffle share" in proc.stdout
