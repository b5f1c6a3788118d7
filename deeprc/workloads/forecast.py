"""Neural forecasting with neuralforecast: model registry, training (optionally DDP over DeepRC), checkpoints."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deeprc.errors import DeepRCError

MODELS = ("NBEATS", "NHITS", "LSTM", "GRU", "TCN", "DeepAR", "PatchTST", "TimesNet", "Autoformer",
          "FEDformer", "VanillaTransformer", "iTransformer")
# stage parameters that are ours, not model keyword arguments
OWN_PARAMS = {"model", "models", "horizon", "input_size", "max_steps", "batch_size", "dataset", "freq",
              "seed", "resume", "plot_series", "scaler_type", "threads", "transform"}
TRANSFORMS = ("none", "seasonal_diff")


def model_class(name: str) -> type:
    """The neuralforecast class for a model name (case-insensitive)."""
    import neuralforecast.models as nfm

    lookup = {m.lower(): m for m in MODELS}
    key = lookup.get(str(name).lower())
    if key is None:
        raise DeepRCError(f"stage parameter 'model': unknown model '{name}'. Fix: use one of {', '.join(MODELS)}.")
    return getattr(nfm, key)


def trainer_kwargs(comm: Any) -> dict[str, Any]:
    """Lightning Trainer settings: quiet, CPU/GPU, and DDP over DeepRC's cluster environment when size > 1."""
    import torch

    kwargs: dict[str, Any] = {"enable_progress_bar": False, "enable_model_summary": False, "logger": False,
                              "enable_checkpointing": False}
    gpu = torch.cuda.is_available()
    kwargs["accelerator"] = "gpu" if gpu else "cpu"
    if comm.size > 1:
        from pytorch_lightning.strategies import DDPStrategy

        from deeprc.comm import DeepRCEnvironment

        env = DeepRCEnvironment(comm)
        # the environment goes in the strategy only: Lightning rejects it in both places
        kwargs.update(devices=comm.local_size, num_nodes=comm.num_nodes,
                      strategy=DDPStrategy(cluster_environment=env,
                                           process_group_backend="nccl" if gpu else "gloo"))
    else:
        from lightning_fabric.plugins.environments import LightningEnvironment

        # An explicit environment: inside a Slurm job Lightning would otherwise pick its
        # SLURMEnvironment from the job's variables and reject the allocation's task layout.
        kwargs.update(devices=1, plugins=[LightningEnvironment()])
    return kwargs


def make_model(name: str, *, horizon: int, input_size: int, max_steps: int, batch_size: int, seed: int,
               n_series: int, comm: Any, extra: dict[str, Any] | None = None, scaler_type: str = "robust") -> Any:
    """One configured neuralforecast model; `extra` keys are passed to the model unchanged."""
    cls = model_class(name)
    kwargs: dict[str, Any] = dict(h=horizon, input_size=input_size, max_steps=max_steps, batch_size=batch_size,
                                  random_seed=seed, scaler_type=scaler_type)
    if getattr(cls, "MULTIVARIATE", False):
        kwargs["n_series"] = n_series
    kwargs.update(extra or {})
    kwargs.update(trainer_kwargs(comm))
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise DeepRCError(f"stage parameter for model {cls.__name__}: {exc}. Fix: remove or rename the "
                          "model keyword arguments in the stage's params.") from exc


def config_hash(config: dict[str, Any]) -> str:
    """A short stable hash of the training configuration (decides whether a checkpoint may be resumed)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _deepcopies_hparams() -> bool:
    """neuralforecast 3.x serialises a model by deep-copying its hparams (loss modules included)."""
    from importlib.metadata import version

    from packaging.version import Version

    return Version("3") <= Version(version("neuralforecast")) < Version("4")


def release_loss_graphs(models: list[Any]) -> int:
    """Detach tensors that a loss module cached during training (they keep autograd history).

    neuralforecast 3.x: `DistributionLoss.get_distribution` (and the mixture losses) keep the last
    batch's `distr_mean` on the loss, still attached to the graph; `save` deep-copies the hparams,
    which hold that loss, and torch refuses to deep-copy a non-leaf tensor ("Only Tensors created
    explicitly by the user (graph leaves) support the deepcopy protocol"). This broke saving DeepAR
    (and any model given a distribution loss). Version-gated: re-check on a neuralforecast upgrade.
    Returns how many tensors were detached.
    """
    import torch

    if not _deepcopies_hparams():
        return 0
    count = 0
    for model in models:
        losses = [getattr(model, "loss", None), getattr(model, "valid_loss", None),
                  *dict(getattr(model, "hparams", {})).values()]
        for loss in losses:
            if not isinstance(loss, torch.nn.Module):
                continue
            for key, value in vars(loss).items():
                if isinstance(value, torch.Tensor) and value.grad_fn is not None:
                    setattr(loss, key, value.detach())
                    count += 1
    return count


def fit_or_resume(models: list[Any], train: pd.DataFrame, freq: str, checkpoint: Path, config: dict[str, Any],
                  resume: bool, rank: int, log: logging.Logger) -> tuple[Any, bool]:
    """Fit a NeuralForecast, or load it from `checkpoint` when the saved config hash matches."""
    from neuralforecast import NeuralForecast

    stamp = checkpoint / "deeprc_config.json"
    digest = config_hash(config)
    if resume and stamp.is_file() and json.loads(stamp.read_text()).get("hash") == digest:
        log.info("resuming from checkpoint %s", checkpoint)
        return NeuralForecast.load(str(checkpoint)), True
    nf = NeuralForecast(models=models, freq=freq)
    nf.fit(df=train)
    if rank == 0:
        release_loss_graphs(nf.models)
        nf.save(str(checkpoint), overwrite=True, save_dataset=False)
        stamp.write_text(json.dumps({"hash": digest, "config": config}, default=str))
    return nf, False


def single_device(nf: Any) -> None:
    """After DDP training, predict on one device per rank (Lightning cannot gather predictions)."""
    for model in nf.models:
        tk = getattr(model, "trainer_kwargs", {})
        from lightning_fabric.plugins.environments import LightningEnvironment

        for key in ("strategy", "num_nodes"):
            tk.pop(key, None)
        tk["devices"] = 1
        tk["plugins"] = [LightningEnvironment()]  # not the scheduler's (e.g. SLURMEnvironment)


def leave_process_group() -> None:
    """After DDP training on a warm worker: drop torch's process group and Lightning's process-wide rank.

    The worker process runs later stages too; left as DDP left them (rank_zero_only.rank = this
    rank, the group initialised), a later single-rank stage on what was rank 1 behaved as a
    non-zero rank and its checkpoint was never written.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    for module in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero"):
        try:
            mod = __import__(module, fromlist=["rank_zero_only"])
        except ImportError:
            continue
        mod.rank_zero_only.rank = 0


def predict(nf: Any, train: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Forecasts after the end of `train` in long form: unique_id, ds, model, y_hat."""
    fc = nf.predict(df=train).reset_index()
    frames = []
    for name in names:
        col = name if name in fc.columns else next(c for c in fc.columns if c.startswith(name))
        frames.append(pd.DataFrame({"unique_id": fc["unique_id"].astype(str), "ds": fc["ds"],
                                    "model": name, "y_hat": fc[col].astype(float)}))
    return pd.concat(frames, ignore_index=True)


def check_transform(name: str, stage: str) -> str:
    """A valid `transform` parameter value (an error naming the stage otherwise)."""
    name = str(name).lower()
    if name not in TRANSFORMS:
        raise DeepRCError(f"stage '{stage}' parameter 'transform': unknown transform '{name}'. "
                          f"Fix: use one of {', '.join(TRANSFORMS)}.")
    return name


def seasonal_difference(train: pd.DataFrame, season: int) -> pd.DataFrame:
    """y_t - y_(t-season) per series (rows sorted by unique_id, ds); each series loses its first season.

    The model then learns how this year differs from last year: a forecast of zero is seasonal naive.
    """
    diff = train.groupby("unique_id", sort=False)["y"].diff(season)
    return train.assign(y=diff)[diff.notna()].reset_index(drop=True)


def undo_seasonal_difference(pred: pd.DataFrame, train: pd.DataFrame, season: int) -> pd.DataFrame:
    """Forecasts of seasonal differences back in levels: y_hat_t = y_(t-season) (observed or forecast) + d_hat_t."""
    out = []
    for (_, uid), part in pred.groupby(["model", "unique_id"], sort=False):
        part = part.sort_values("ds")
        levels = list(train.loc[train["unique_id"] == uid, "y"].to_numpy(dtype=float)[-season:])
        for d in part["y_hat"].to_numpy(dtype=float):
            levels.append(levels[-season] + d)
        out.append(part.assign(y_hat=levels[season:]))
    return pd.concat(out, ignore_index=True)


def seasonal_naive_frame(train: pd.DataFrame, test: pd.DataFrame, season: int) -> pd.DataFrame:
    """Seasonal-naive forecasts for each test series (last season repeated)."""
    from deeprc.workloads.metrics import seasonal_naive

    rows = []
    for uid, part in test.groupby("unique_id", sort=False):
        hist = train.loc[train["unique_id"] == uid, "y"].to_numpy()
        rows.append(pd.DataFrame({"unique_id": uid, "ds": part["ds"].values, "model": "SeasonalNaive",
                                  "y_hat": seasonal_naive(hist, len(part), season)}))
    return pd.concat(rows, ignore_index=True)


def score(pred: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame, season: int) -> pd.DataFrame:
    """Per-series MAE, RMSE, sMAPE and MASE of every model in `pred` against `test`."""
    from deeprc.workloads.metrics import forecast_scores

    merged = pred.merge(test[["unique_id", "ds", "y"]], on=["unique_id", "ds"], how="inner")
    rows = []
    for (model, uid), part in merged.groupby(["model", "unique_id"], sort=False):
        hist = train.loc[train["unique_id"] == uid, "y"].to_numpy()
        rows.append({"model": model, "unique_id": uid,
                     **forecast_scores(part["y"].to_numpy(), part["y_hat"].to_numpy(), hist, season)})
    return pd.DataFrame(rows)


def set_threads(threads: int) -> None:
    """Intra-op threads per rank (1 by default: tiny models lose more to thread waits on busy cores)."""
    import torch

    torch.set_num_threads(max(1, threads))


def summarise(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean of each metric over series, one row per model, best MASE first."""
    cols = ["MAE", "RMSE", "sMAPE", "MASE"]
    out = scores.groupby("model", sort=False)[cols].mean().reset_index()
    return out.sort_values("MASE").reset_index(drop=True)


def as_float(x: Any) -> float | None:
    """A JSON-safe float (None for NaN)."""
    x = float(x)
    return None if np.isnan(x) else x
