"""Catchment loaders (Leaf River, lumod, CAMELS-US layout, user CSV) and prepare_hydrology's checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeprc.errors import DeepRCError
from deeprc.workloads import stages
from deeprc.workloads.hydro_data import camels_gauges, leaf_river, load_basins


def test_leaf_river_is_the_spotpy_record():
    b = leaf_river()
    f = b.frame
    assert len(f) == 3717 and f.index[0] == pd.Timestamp("1952-07-28") and f.index[-1] == pd.Timestamp("1962-09-30")
    assert list(f.columns) == ["prcp", "pet", "flow"] and b.flow_units == "m3/s"
    assert f["prcp"].iloc[0] == pytest.approx(0.0 + 2.6534 + 1.3484 + 13.2207)  # four gauges summed
    assert 1.0 < f["pet"].mean() < 6.0 and f["flow"].min() > 0


def test_lumod_catchments_get_oudin_pet():
    for name in ("example1", "example2", "example3"):
        (b,) = load_basins(f"lumod:{name}")
        assert {"prcp", "tmean", "pet", "flow"} <= set(b.frame.columns)
        assert (b.frame["pet"] >= 0).all() and 0.5 < b.frame["pet"].mean() < 8
    with pytest.raises(DeepRCError, match="lumod:example1"):
        load_basins("lumod:example9")


def write_camels(root: Path, gauges: dict[str, str], days: int = 1461, missing_flow: int = 5) -> None:
    """Files in the CAMELS-US layout (forcings, USGS flow with -999 gaps, attributes)."""
    rng = np.random.default_rng(1)
    dates = pd.date_range("1990-01-01", periods=days, freq="D")
    rows = []
    for gauge, huc in gauges.items():
        area_km2 = 100.0 + 50 * len(rows)
        doy = dates.day_of_year.values
        tmax = 15 + 10 * np.sin(2 * np.pi * (doy - 100) / 365) + rng.normal(0, 2, days)
        prcp = rng.gamma(0.4, 8, days)
        store, q_mm = 0.0, []
        for p in prcp:
            store += p
            q_mm.append(0.05 * store)
            store *= 0.95
        forcing_dir = root / "basin_mean_forcing" / "daymet" / huc
        forcing_dir.mkdir(parents=True, exist_ok=True)
        met = pd.DataFrame({"Year": dates.year, "Mnth": dates.month, "Day": dates.day, "Hr": 12,
                            "dayl(s)": 40000.0, "prcp(mm/day)": prcp.round(2), "srad(W/m2)": 300.0, "swe(mm)": 0.0,
                            "tmax(C)": tmax.round(2), "tmin(C)": (tmax - 10).round(2), "vp(Pa)": 800.0})
        with open(forcing_dir / f"{gauge}_lump_cida_forcing_leap.txt", "w") as fh:
            fh.write(f"40.5\n300\n{area_km2 * 1e6:.0f}\n")
            met.to_csv(fh, sep=" ", index=False)
        cfs = np.array(q_mm) * area_km2 * 1e6 / 1000 / 86400 / 0.028316846592
        cfs[100:100 + missing_flow] = -999.0
        flow_dir = root / "usgs_streamflow" / huc
        flow_dir.mkdir(parents=True, exist_ok=True)
        q = pd.DataFrame({"g": gauge, "y": dates.year, "m": dates.month, "d": dates.day, "q": cfs.round(3), "f": "A"})
        q.to_csv(flow_dir / f"{gauge}_streamflow_qc.txt", sep=" ", index=False, header=False)
        rows.append({"gauge_id": gauge, "gauge_lat": 40.5, "gauge_lon": -100.0, "area_gages2": area_km2,
                     "q_true_mean": float(np.mean(q_mm))})
    attrs = root / "camels_attributes_v2.0"
    attrs.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).drop(columns="q_true_mean").to_csv(attrs / "camels_topo.txt", sep=";", index=False)
    pd.DataFrame({"gauge_id": list(gauges), "p_mean": 3.2}).to_csv(attrs / "camels_clim.txt", sep=";", index=False)
    (root / "truth.json").write_text(json.dumps(rows))


def test_camels_layout_many_basins(tmp_path, make_ctx):
    root = tmp_path / "camels"
    write_camels(root, {"01013500": "01", "02011400": "02", "03011020": "03"})
    assert camels_gauges(root) == ["01013500", "02011400", "03011020"]
    basins = load_basins(f"camels:{root}:all")
    truth = {r["gauge_id"]: r for r in json.loads((root / "truth.json").read_text())}
    for b in basins:
        assert b.flow_units == "mm/d" and b.area_km2 == truth[b.name]["area_gages2"]
        assert b.attributes["p_mean"] == 3.2
        assert b.frame["flow"].isna().sum() == 5  # -999 became missing
        # cfs converted back to mm/d with the attribute area
        assert b.frame["flow"].mean() == pytest.approx(truth[b.name]["q_true_mean"], rel=0.01)
        assert {"prcp", "tmax", "tmin", "pet"} <= set(b.forcings)
    ctx = make_ctx(tmp_path, "prepare_hydrology", {"basin": f"camels:{root}:01013500,03011020",
                                                    "test_years": 1, "seq_len": 60})
    out = stages.prepare_hydrology(ctx)
    assert out["basins"] == ["01013500", "03011020"]
    table = pd.read_parquet(ctx.outdir / "basin.parquet")
    norm = json.loads((ctx.outdir / "norm.json").read_text())
    for name, part in table.groupby("basin"):
        train = part[part["split"] == "train"]
        assert norm["basins"][name]["stats"]["prcp"][0] == pytest.approx(train["prcp"].mean())
        assert part[part["split"] == "test"]["date"].min() == pd.Timestamp("1993-01-01")


def _user_csv(tmp_path: Path, days: int = 900) -> tuple[Path, pd.DataFrame]:
    dates = pd.date_range("2000-01-01", periods=days, freq="D")
    df = pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "rain": np.arange(days) % 7.0,
                       "pet": 2.0, "flow": np.arange(days) % 5.0 + 1})
    return tmp_path / "mybasin.csv", df


def _fail(tmp_path, make_ctx, df: pd.DataFrame, path: Path, **params) -> str:
    df.to_csv(path, index=False)
    ctx = make_ctx(tmp_path, "prepare_hydrology", {"basin": str(path), "forcings": ["rain", "pet"], "test_years": 1,
                                                    "seq_len": 90, **params})
    with pytest.raises(DeepRCError) as err:
        stages.prepare_hydrology(ctx)
    assert str(path) in str(err.value) and "Fix:" in str(err.value)
    return str(err.value)


def test_user_csv_ok(tmp_path, make_ctx):
    path, df = _user_csv(tmp_path)
    df.to_csv(path, index=False)
    ctx = make_ctx(tmp_path, "prepare_hydrology", {"basin": str(path), "forcings": ["rain", "pet"], "test_years": 1})
    out = stages.prepare_hydrology(ctx)
    assert out["basins"] == ["mybasin"] and out["test_days"] == 365 and out["forcings"] == ["rain", "pet"]


def test_user_csv_missing_column(tmp_path, make_ctx):
    path, df = _user_csv(tmp_path)
    assert "missing column(s) flow" in _fail(tmp_path, make_ctx, df.drop(columns="flow"), path)


def test_user_csv_non_monotonic(tmp_path, make_ctx):
    path, df = _user_csv(tmp_path)
    df.loc[[10, 11], "date"] = df.loc[[11, 10], "date"].values
    msg = _fail(tmp_path, make_ctx, df, path)
    assert "basin 'mybasin'" in msg and "not strictly increasing" in msg


def test_user_csv_gap(tmp_path, make_ctx):
    path, df = _user_csv(tmp_path)
    msg = _fail(tmp_path, make_ctx, df.drop(index=[300, 301]), path)
    assert "basin 'mybasin'" in msg and "2 missing day(s) in the daily record, first 2000-10-27" in msg


def test_user_csv_too_short(tmp_path, make_ctx):
    path, df = _user_csv(tmp_path, days=400)
    msg = _fail(tmp_path, make_ctx, df, path)
    assert "basin 'mybasin'" in msg and "too short for seq_len 90" in msg


def test_user_csv_missing_forcing_values(tmp_path, make_ctx):
    path, df = _user_csv(tmp_path)
    df.loc[50, "rain"] = np.nan
    msg = _fail(tmp_path, make_ctx, df, path)
    assert "basin 'mybasin'" in msg and "missing forcings, first 2000-02-20" in msg
