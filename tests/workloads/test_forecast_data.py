"""Forecast data sets and the bad-data errors of prepare_forecast."""

from __future__ import annotations

import pandas as pd
import pytest

from deeprc.errors import DeepRCError
from deeprc.workloads import stages
from deeprc.workloads.forecast_data import load_forecast


def test_shipped_datasets_have_real_shapes():
    air = load_forecast("airpassengers")
    assert (air.freq, air.season, len(air.df)) == ("ME", 12, 144)
    assert air.df["y"].iloc[0] == 112 and air.df["y"].iloc[-1] == 432  # Box & Jenkins series
    vis = load_forecast("visnights")
    assert vis.season == 4 and vis.df["unique_id"].nunique() == 20
    sizes = vis.df.groupby("unique_id").size()
    assert set(sizes) == {76}
    assert vis.df["ds"].min() == pd.Timestamp("1998-01-01") and vis.df["ds"].max() == pd.Timestamp("2016-10-01")


def test_prepare_writes_held_out_horizon(tmp_path, make_ctx):
    ctx = make_ctx(tmp_path, "prepare_forecast", {"dataset": "visnights", "horizon": 8, "input_size": 16})
    meta = stages.prepare_forecast(ctx)
    train = pd.read_parquet(ctx.outdir / "train.parquet")
    test = pd.read_parquet(ctx.outdir / "test.parquet")
    assert meta["series"] == 20 and len(test) == 20 * 8 and len(train) == 20 * 68
    last_train = train.groupby("unique_id")["ds"].max()
    first_test = test.groupby("unique_id")["ds"].min()
    assert (first_test > last_train).all()
    assert (first_test == pd.Timestamp("2015-01-01")).all()


def _long(n: int = 40, uid: str = "s1") -> pd.DataFrame:
    ds = pd.date_range("2000-01-01", periods=n, freq="MS")
    return pd.DataFrame({"unique_id": uid, "ds": ds, "y": range(n)})


def _fail(tmp_path, make_ctx, df: pd.DataFrame, horizon: int = 6, input_size: int = 12, name: str = "bad.csv") -> str:
    path = tmp_path / name
    if name.endswith(".parquet"):
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)
    ctx = make_ctx(tmp_path, "prepare_forecast", {"dataset": str(path), "horizon": horizon, "input_size": input_size})
    with pytest.raises(DeepRCError) as err:
        stages.prepare_forecast(ctx)
    message = str(err.value)
    assert str(path) in message and "Fix:" in message
    return message


def test_missing_column(tmp_path, make_ctx):
    msg = _fail(tmp_path, make_ctx, _long().rename(columns={"y": "value"}))
    assert "missing column(s) y" in msg


def test_non_monotonic_dates(tmp_path, make_ctx):
    df = pd.concat([_long(uid="a"), _long(uid="b")], ignore_index=True)
    df.loc[45, "ds"], df.loc[46, "ds"] = df.loc[46, "ds"], df.loc[45, "ds"]
    msg = _fail(tmp_path, make_ctx, df, name="bad.parquet")
    assert "series 'b'" in msg and "not strictly increasing" in msg


def test_gap(tmp_path, make_ctx):
    df = pd.concat([_long(uid="a"), _long(uid="gappy").drop(index=20)], ignore_index=True)
    msg = _fail(tmp_path, make_ctx, df)
    assert "series 'gappy'" in msg and "gaps" in msg and "2001-09-01" in msg


def test_too_short(tmp_path, make_ctx):
    df = pd.concat([_long(uid="long"), _long(n=20, uid="short")], ignore_index=True)
    msg = _fail(tmp_path, make_ctx, df, horizon=6, input_size=12)
    assert "series 'short' has 20 points" in msg and "needs 24" in msg


def test_unknown_dataset_name(tmp_path, make_ctx):
    ctx = make_ctx(tmp_path, "prepare_forecast", {"dataset": "airpasengers"})
    with pytest.raises(DeepRCError, match="unknown data set 'airpasengers'"):
        stages.prepare_forecast(ctx)
