"""Every listed forecasting model trains, saves its checkpoint and scores on real data (tiny sizes, few steps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeprc.pipeline.spec import load_pipeline
from deeprc.workloads import forecast as fc
from deeprc.workloads import stages

PAPER = Path(__file__).resolve().parents[2] / "pipelines" / "paper.yaml"


def tiny_params() -> dict[str, dict]:
    """Each model's parameters in pipelines/paper.yaml's small profile (tiny layers), keyed by model name."""
    pipe = load_pipeline(PAPER, "small")
    return {s.params["model"]: s.params for s in pipe.stages
            if s.function.endswith(":train_forecast") and "prepare_forecast" in s.depends_on}


TINY = tiny_params()


def test_paper_pipeline_trains_every_model():
    assert sorted(TINY) == sorted(fc.MODELS)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, make_ctx):
    run = tmp_path_factory.mktemp("models")
    stages.prepare_forecast(make_ctx(run, "prepare_forecast", {"dataset": "airpassengers", "horizon": 12,
                                                                "input_size": 24}))
    return run


@pytest.mark.parametrize("name", fc.MODELS)
def test_model_trains_saves_and_scores(name, prepared, make_ctx):
    params = {**TINY[name], "max_steps": 2, "resume": False}
    ctx = make_ctx(prepared, f"train_{name.lower()}", params, {"prepare_forecast": prepared / "prepare_forecast"})
    metrics = stages.train_forecast(ctx)
    assert metrics["models"] == [name] and metrics["resumed"] is False
    pred = pd.read_parquet(ctx.outdir / "predictions.parquet")
    mine = pred[pred["model"] == name]
    assert len(mine) == 12 and mine["ds"].min() == pd.Timestamp("1960-01-31")
    assert np.isfinite(mine["y_hat"]).all() and mine["y"].notna().all()
    # scores are the model's own errors on the held-out year, recomputed here from the predictions
    assert metrics["MAE"] == pytest.approx(float(np.mean(np.abs(mine["y"] - mine["y_hat"]))), rel=1e-6)
    assert 0 < metrics["sMAPE"] < 200 and metrics["MASE"] > 0 and metrics["naive_MASE"] == pytest.approx(1.571, abs=1e-3)
    # the checkpoint was written (saving DeepAR failed before the loss-graph fix) and loads back
    from neuralforecast import NeuralForecast

    loaded = NeuralForecast.load(str(ctx.outdir / "checkpoint"))
    assert [type(m).__name__ for m in loaded.models] == [name]


def test_release_loss_graphs_detaches_cached_distribution_tensors():
    import torch
    from neuralforecast.losses.pytorch import DistributionLoss

    loss = DistributionLoss(distribution="StudentT", level=[80])
    params = torch.ones(4, 3, requires_grad=True)
    loss.get_distribution((params * 2, params + 1, params * 3))  # caches distr_mean with autograd history
    assert loss.distr_mean.grad_fn is not None

    class Holder:
        pass

    holder = Holder()
    holder.loss, holder.valid_loss, holder.hparams = loss, None, {"loss": loss}
    assert fc.release_loss_graphs([holder]) == 1
    assert loss.distr_mean.grad_fn is None
    import copy

    copy.deepcopy(dict(holder.hparams))  # what neuralforecast's save does; raised before
