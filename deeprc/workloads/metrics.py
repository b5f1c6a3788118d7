"""Forecast and hydrology scores computed with numpy (NaN observations are ignored)."""

from __future__ import annotations

import numpy as np


def _pair(y: np.ndarray, yhat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=float).ravel()
    yhat = np.asarray(yhat, dtype=float).ravel()
    if y.shape != yhat.shape:
        raise ValueError(f"observed ({y.size}) and predicted ({yhat.size}) differ in length")
    keep = np.isfinite(y) & np.isfinite(yhat)
    return y[keep], yhat[keep]


def mae(y: np.ndarray, yhat: np.ndarray) -> float:
    """Mean absolute error."""
    y, yhat = _pair(y, yhat)
    return float(np.mean(np.abs(y - yhat)))


def rmse(y: np.ndarray, yhat: np.ndarray) -> float:
    """Root mean squared error."""
    y, yhat = _pair(y, yhat)
    return float(np.sqrt(np.mean((y - yhat) ** 2)))


def smape(y: np.ndarray, yhat: np.ndarray) -> float:
    """Symmetric MAPE in percent (0..200); points where both are zero count as 0."""
    y, yhat = _pair(y, yhat)
    den = np.abs(y) + np.abs(yhat)
    ratio = np.divide(np.abs(y - yhat), den, out=np.zeros_like(den), where=den > 0)
    return float(200.0 * np.mean(ratio))


def naive_scale(train: np.ndarray, season: int) -> float:
    """In-sample MAE of the seasonal-naive forecast (MASE denominator); falls back to lag 1."""
    train = np.asarray(train, dtype=float)
    lag = season if train.size > season else 1
    diffs = np.abs(train[lag:] - train[:-lag])
    diffs = diffs[np.isfinite(diffs)]
    return float(np.mean(diffs)) if diffs.size else float("nan")


def mase(y: np.ndarray, yhat: np.ndarray, train: np.ndarray, season: int) -> float:
    """Mean absolute scaled error against the in-sample seasonal-naive MAE."""
    scale = naive_scale(train, season)
    return mae(y, yhat) / scale if scale > 0 else float("nan")


def seasonal_naive(train: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Repeat the last season of `train` over `horizon` steps."""
    train = np.asarray(train, dtype=float)
    season = max(1, min(season, train.size))
    last = train[-season:]
    return np.resize(last, horizon) if horizon else np.empty(0)


def nse(y: np.ndarray, yhat: np.ndarray) -> float:
    """Nash-Sutcliffe efficiency (1 is perfect, 0 equals the observed mean)."""
    y, yhat = _pair(y, yhat)
    den = np.sum((y - y.mean()) ** 2)
    return float(1.0 - np.sum((y - yhat) ** 2) / den) if den > 0 else float("nan")


def kge(y: np.ndarray, yhat: np.ndarray) -> float:
    """Kling-Gupta efficiency (2009): 1 - sqrt((r-1)^2 + (alpha-1)^2 + (beta-1)^2)."""
    y, yhat = _pair(y, yhat)
    if y.size < 2 or y.std() == 0 or y.mean() == 0:
        return float("nan")
    r = np.corrcoef(y, yhat)[0, 1] if yhat.std() > 0 else 0.0
    alpha = yhat.std() / y.std()
    beta = yhat.mean() / y.mean()
    return float(1.0 - np.sqrt((r - 1) ** 2 + (alpha - 1) ** 2 + (beta - 1) ** 2))


def forecast_scores(y: np.ndarray, yhat: np.ndarray, train: np.ndarray, season: int) -> dict[str, float]:
    """MAE, RMSE, sMAPE and MASE of one series."""
    return {"MAE": mae(y, yhat), "RMSE": rmse(y, yhat), "sMAPE": smape(y, yhat),
            "MASE": mase(y, yhat, train, season)}


def hydro_scores(y: np.ndarray, yhat: np.ndarray) -> dict[str, float]:
    """NSE, KGE and RMSE of one basin."""
    return {"NSE": nse(y, yhat), "KGE": kge(y, yhat), "RMSE": rmse(y, yhat)}
