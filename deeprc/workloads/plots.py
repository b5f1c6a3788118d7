"""Figures written with matplotlib's Agg backend: forecasts, hydrographs, metric comparisons."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def forecast_plot(train: pd.DataFrame, test: pd.DataFrame, pred: pd.DataFrame, path: Path,
                  max_series: int = 4, history: int = 48) -> Path:
    """History tail, held-out truth and each model's forecast for the first `max_series` series."""
    uids = list(test["unique_id"].drop_duplicates())[:max_series]
    fig, axes = plt.subplots(len(uids), 1, figsize=(9, 2.6 * len(uids)), squeeze=False)
    for ax, uid in zip(axes[:, 0], uids):
        hist = train[train["unique_id"] == uid].tail(history)
        truth = test[test["unique_id"] == uid]
        ax.plot(hist["ds"], hist["y"], color="black", lw=1, label="history")
        ax.plot(truth["ds"], truth["y"], color="black", lw=1.5, ls="--", label="held out")
        for model, part in pred[pred["unique_id"] == uid].groupby("model", sort=False):
            ax.plot(part["ds"], part["y_hat"], lw=1.3, label=model)
        ax.set_title(str(uid), fontsize=9)
        ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def hydrograph(dates: pd.Series, observed: pd.Series, simulated: pd.Series, title: str, path: Path,
               units: str = "") -> Path:
    """Observed vs simulated streamflow over the test period."""
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.plot(dates, observed, color="black", lw=0.9, label="observed")
    ax.plot(dates, simulated, color="tab:blue", lw=0.9, label="simulated")
    ax.set_ylabel(f"flow {units}".strip())
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def metric_bars(table: pd.DataFrame, metric: str, label: str, path: Path, reference: float | None = None) -> Path:
    """One bar per row of `table` (columns `label`, `metric`), with an optional reference line."""
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(table) + 2), 3.5))
    ax.bar(table[label].astype(str), table[metric].astype(float), color="tab:blue")
    if reference is not None:
        ax.axhline(reference, color="tab:red", ls="--", lw=1)
    ax.set_ylabel(metric)
    ax.tick_params(axis="x", rotation=45, labelsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
