"""Every listed forecasting model trains, saves its checkpoint and scores on real data (tiny sizes, few steps)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deeprc.workloads import forecast as fc
from deeprc.workloads import stages

# Tiny layers so each model trains in seconds; the quality at full size is in docs/results.md.
TINY = {
    "NBEATS": {"mlp_units": [[16, 16]] * 3},
    "NHITS": {"mlp_units": [[16, 16]] * 3},
    "LSTM": {"encoder_hidden_size": 16, "decoder_hidden_size": 16, "encoder_n_layers": 1},
    "GRU": {"encoder_hidden_size": 16, "decoder_hidden_size": 16, "encoder_n_layers": 1},
    "TCN": {"encoder_hidden_size": 16, "decoder_hidden_size": 16},
    "DeepAR": {"lstm_hidden_size": 16, "lstm_n_layers": 1, "trajectory_samples": 10},
    "PatchTST": {"hidden_size": 16, "n_heads": 2, "linear_hidden_size": 16, "encoder_layers": 1},
    "TimesNet": {"hidden_size": 8, "conv_hidden_size": 8, "top_k": 2, "num_kernels": 2, "encoder_layers": 1},
    "Autoformer": {"hidden_size": 16, "conv_hidden_size": 16, "n_head": 2, "encoder_layers": 1},
    "FEDformer": {"hidden_size": 16, "conv_hidden_size": 16, "modes": 8, "encoder_layers": 1},
    "VanillaTransformer": {"hidden_size": 16, "conv_hidden_size": 16, "n_head": 2, "encoder_layers": 1},
    "iTransformer": {"hidden_size": 16, "n_heads": 2, "e_layers": 1, "d_ff": 32},
}


def test_tiny_settings_cover_every_model():
    assert set(TINY) == set(fc.MODELS)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, make_ctx):
    run = tmp_path_factory.mktemp("models")
    stages.prepare_forecast(make_ctx(run, "prepare_forecast", {"dataset": "airpassengers", "horizon": 12,
                                                                "input_size": 24}))
    return run


@pytest.mark.parametrize("name", fc.MODELS)
def test_model_trains_saves_and_scores(name, prepared, make_ctx):
    params = {"model": name, "horizon": 12, "input_size": 24, "max_steps": 2, "batch_size": 8,
              "resume": False, "plot_series": 0, **TINY[name]}
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
