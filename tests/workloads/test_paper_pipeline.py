"""`deeprc-deploy run pipelines/paper.yaml --site local --profile small`: every model of the paper's experiment scores."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from deeprc.pipeline.spec import load_pipeline
from deeprc.workloads.forecast import MODELS

PAPER = Path(__file__).resolve().parents[2] / "pipelines" / "paper.yaml"


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory) -> tuple[Path, dict]:
    run = tmp_path_factory.mktemp("paper") / "run"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([sys.executable, "-m", "deeprc.cli", "run", str(PAPER), "--site", "local", "--profile",
                           "small", "--run-dir", str(run)], capture_output=True, text=True, env=env, timeout=900,
                          cwd=tmp_path_factory.getbasetemp())
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return run, json.loads((run / "metrics.json").read_text())


def _finite(x: object) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


@pytest.mark.slow
def test_paper_small_every_model_scores(paper_run):
    run, metrics = paper_run
    pipe = load_pipeline(PAPER, "small")
    assert set(metrics) == set(pipe.names)
    forecast = {s.name: s for s in pipe.stages if s.function and s.function.endswith(":train_forecast")}
    trained = sorted(metrics[n]["models"][0] for n, s in forecast.items() if "prepare_forecast" in s.depends_on)
    assert trained == sorted(MODELS)
    for name in forecast:
        m = metrics[name]
        assert all(_finite(m[k]) and m[k] > 0 for k in ("MAE", "RMSE", "sMAPE", "MASE", "naive_MASE")), (name, m)
        pred = pd.read_parquet(run / "stages" / name / "predictions.parquet")
        assert pred["y_hat"].notna().all() and len(pred) == 2 * len(pd.read_parquet(
            run / "stages" / forecast[name].depends_on[0] / "test.parquet")), name
    assert metrics["fc_visnights_nbeats"]["ranks"] == 2 and metrics["fc_visnights_nbeats"]["series"] == 20
    assert sorted(metrics["prepare_hydrology"]["basins"]) == ["leaf_river", "lumod_example2", "lumod_example3"]
    hydro = [s for s in pipe.stages if s.function and s.function.endswith(":train_hydrology")]
    assert {(s.params["arch"], s.params["basins"][0]) for s in hydro} >= {
        (a, b) for a in ("lstm", "gru") for b in metrics["prepare_hydrology"]["basins"]}
    for s in hydro:
        m = metrics[s.name]
        assert m["basins"] == 1 and _finite(m["NSE"]) and _finite(m["KGE"]) and m["ranks"] == s.ranks, (s.name, m)
    assert load_pipeline(PAPER).stage("hy_lstm_leaf_river").ranks == 2  # full: MultiWorkerMirroredStrategy


@pytest.mark.slow
def test_paper_small_report_has_every_model_and_basin(paper_run):
    run, metrics = paper_run
    table = pd.read_parquet(run / "stages" / "evaluate" / "metrics.parquet")
    fc = table[table["kind"] == "forecast"]
    assert set(fc["model"]) == set(MODELS) | {"SeasonalNaive"}
    hy = table[table["kind"] == "hydrology"]
    assert sorted(zip(hy["model"], hy["basin"])) == sorted(
        (a, b) for a in ("gru", "lstm") for b in ("leaf_river", "lumod_example2", "lumod_example3"))
    summary = (run / "stages" / "evaluate" / "summary.md").read_text()
    assert all(f"| {m} |" in summary for m in MODELS) and "lumod_example3" in summary
    ev = metrics["evaluate"]
    assert ev["best_forecast_model"] in MODELS and _finite(ev["best_NSE"])
    # each data set is scored against its own seasonal naive (AirPassengers 1.571, visnights 1.127)
    assert ev["naive_MASE"] == pytest.approx(1.571, abs=1e-3) and ev["visnights_naive_MASE"] == pytest.approx(1.127, abs=1e-3)
    assert ev["models_beating_naive"].endswith(f"/{len(MODELS)}")
    # the visnights model runs at its full configuration in the small profile too (2 DDP ranks): it beats naive
    assert ev["visnights_models_beating_naive"] == "1/1" and ev["visnights_best_MASE"] < 1.05, ev
    assert (run / "report.md").is_file()
