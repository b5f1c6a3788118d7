"""Daily catchment data sets (forcings + streamflow): Leaf River, lumod, CAMELS-US layout, user CSV."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deeprc.errors import DeepRCError, config_error
from deeprc.workloads.evaporation import oudin_pet
from deeprc.workloads.forecast_data import read_table

CFS_TO_M3S = 0.028316846592


@dataclass
class Basin:
    """One catchment: a daily frame (DatetimeIndex) with forcing columns and `flow`."""

    name: str
    frame: pd.DataFrame
    forcings: list[str]
    flow_units: str
    source: str
    area_km2: float | None = None
    lat: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


def leaf_river() -> Basin:
    """Leaf River (Mississippi, 1,944 km2), 1952-1962, from spotpy's hymod example (bound.txt)."""
    import spotpy

    path = Path(spotpy.__file__).parent / "examples" / "hymod_exe" / "bound.txt"
    raw = np.loadtxt(path)
    dates = pd.to_datetime(dict(year=raw[:, 2].astype(int), month=raw[:, 1].astype(int), day=raw[:, 0].astype(int)))
    frame = pd.DataFrame({"prcp": raw[:, 5:9].sum(axis=1), "pet": raw[:, 4], "flow": raw[:, 3]},
                         index=pd.DatetimeIndex(dates, name="date"))
    return Basin("leaf_river", frame, ["prcp", "pet"], "m3/s", str(path), area_km2=1944.0, lat=31.7)


def lumod_catchment(name: str) -> Basin:
    """lumod's example1..3: prec, tmin/tmean/tmax, qt (m3/s); PET from Oudin with the catchment latitude."""
    import lumod

    folder = Path(lumod.__file__).parent / "data"
    path = folder / f"{name}.csv"
    if not path.is_file():
        choices = sorted(p.stem for p in folder.glob("example*.csv"))
        raise DeepRCError(f"stage parameter 'basin': lumod has no catchment '{name}'. "
                          f"Fix: use one of {', '.join('lumod:' + c for c in choices)}.")
    raw = pd.read_csv(path)
    raw.columns = [c.lower() for c in raw.columns]
    attrs = pd.read_csv(folder / "attributes.csv")
    row = attrs[attrs["catchment"] == int(name.replace("example", ""))].iloc[0]
    frame = pd.DataFrame({"prcp": raw["prec"].values, "tmean": raw["tmean"].values,
                          "flow": raw["qt"].values}, index=pd.DatetimeIndex(pd.to_datetime(raw["date"]), name="date"))
    check_daily(frame, str(path), f"lumod:{name}")
    frame["pet"] = oudin_pet(frame["tmean"].values, frame.index.day_of_year.values, float(row["lat"]))
    return Basin(f"lumod_{name}", frame, ["prcp", "tmean", "pet"], "m3/s", str(path),
                 area_km2=float(row["area"]), lat=float(row["lat"]))


# ---------------------------------------------------------------- CAMELS-US layout
def _camels_attributes(root: Path) -> pd.DataFrame:
    """All camels_attributes_v2.0/*.txt files joined on gauge_id (';'-separated)."""
    folder = root / "camels_attributes_v2.0"
    frames = []
    for path in sorted(folder.glob("camels_*.txt")):
        table = pd.read_csv(path, sep=";", dtype={"gauge_id": str})
        frames.append(table.set_index("gauge_id"))
    if not frames:
        return pd.DataFrame()
    out = frames[0]
    for table in frames[1:]:
        out = out.join(table[[c for c in table.columns if c not in out.columns]], how="outer")
    out.index = out.index.str.zfill(8)
    return out


def camels_gauges(root: str | Path, source: str = "daymet") -> list[str]:
    """Gauge ids that have a forcing file of `source` under a CAMELS-US folder."""
    root = Path(root)
    return sorted(p.name.split("_")[0] for p in (root / "basin_mean_forcing" / source).glob("*/*_forcing_leap.txt"))


def camels_basin(root: str | Path, gauge: str, source: str = "daymet") -> Basin:
    """One CAMELS-US basin: basin-mean forcings (mm/d, C, ...), USGS flow converted from cfs to mm/d."""
    root = Path(root)
    gauge = str(gauge).zfill(8)
    forcing = list((root / "basin_mean_forcing" / source).glob(f"*/{gauge}_lump_*forcing_leap.txt"))
    if not forcing:
        raise config_error(root / "basin_mean_forcing" / source, "basin",
                           f"no forcing file for gauge {gauge} (looked for <huc>/{gauge}_lump_*_forcing_leap.txt)",
                           "check the gauge id and the forcing source (daymet, maurer, nldas)")
    fpath = forcing[0]
    with open(fpath) as fh:
        lat = float(fh.readline().split()[0])
        fh.readline()
        area_m2 = float(fh.readline().split()[0])
    met = pd.read_csv(fpath, sep=r"\s+", skiprows=3)
    need = ["Year", "Mnth", "Day", "prcp(mm/day)", "tmax(C)", "tmin(C)"]
    missing = [c for c in need if c not in met.columns]
    if missing:
        raise config_error(fpath, "columns", f"basin {gauge}: missing forcing column(s) {', '.join(missing)}",
                           "give the CAMELS forcing layout (Year Mnth Day Hr dayl(s) prcp(mm/day) srad(W/m2) "
                           "swe(mm) tmax(C) tmin(C) vp(Pa))")
    dates = pd.to_datetime(dict(year=met["Year"], month=met["Mnth"], day=met["Day"]))
    frame = pd.DataFrame({"prcp": met["prcp(mm/day)"].values, "tmax": met["tmax(C)"].values,
                          "tmin": met["tmin(C)"].values}, index=pd.DatetimeIndex(dates, name="date"))
    for col, name in (("srad(W/m2)", "srad"), ("vp(Pa)", "vp")):
        if col in met.columns:
            frame[name] = met[col].values
    huc = fpath.parent.name
    qpath = root / "usgs_streamflow" / huc / f"{gauge}_streamflow_qc.txt"
    if not qpath.is_file():
        raise config_error(qpath, "basin", f"no streamflow file for gauge {gauge}",
                           "put <gauge>_streamflow_qc.txt under usgs_streamflow/<huc>/")
    q = pd.read_csv(qpath, sep=r"\s+", header=None, names=["gauge", "year", "month", "day", "q_cfs", "flag"],
                    dtype={"gauge": str})
    qdates = pd.to_datetime(dict(year=q["year"], month=q["month"], day=q["day"]))
    attrs = _camels_attributes(root)
    info = attrs.loc[gauge].to_dict() if gauge in attrs.index else {}
    area_km2 = float(info.get("area_gages2", area_m2 / 1e6))
    lat = float(info.get("gauge_lat", lat))
    cfs = q["q_cfs"].where(q["q_cfs"] >= 0)  # -999 marks missing
    mmd = cfs.values * CFS_TO_M3S * 86400 / (area_km2 * 1e6) * 1000
    frame = frame.join(pd.Series(mmd, index=pd.DatetimeIndex(qdates), name="flow"), how="left")
    check_daily(frame, str(fpath), gauge)
    frame["tmean"] = (frame["tmax"] + frame["tmin"]) / 2
    frame["pet"] = oudin_pet(frame["tmean"].values, frame.index.day_of_year.values, lat)
    forcings = [c for c in ("prcp", "srad", "tmax", "tmin", "vp", "pet") if c in frame.columns]
    return Basin(gauge, frame, forcings, "mm/d", str(fpath), area_km2=area_km2, lat=lat, attributes=info)


DATE_FORMATS = ("ISO8601", "%d.%m.%Y", "%d/%m/%Y", "%m/%d/%Y", "%d-%m-%Y", "%Y%m%d")  # tried in this order


def drop_units_row(raw: pd.DataFrame, date: str) -> pd.DataFrame:
    """Drop a units row right under the header (`date: -, flow: m3/s, prcp: mm/d`), as hydrologists' CSVs
    often have, and read the columns under it as numbers where they are."""
    if raw.empty or date not in raw.columns:
        return raw
    first = raw.iloc[0]
    if pd.notna(pd.to_datetime(pd.Series([first[date]]), errors="coerce", format="mixed")[0]):
        return raw
    others = [c for c in raw.columns if c != date]
    if others and pd.to_numeric(first[others], errors="coerce").notna().any():
        return raw  # a data row with a broken date: the date parser names it
    raw = raw.iloc[1:].reset_index(drop=True)
    for c in others:
        num = pd.to_numeric(raw[c].astype(str).str.replace(",", ".", regex=False).where(raw[c].notna()), errors="coerce")
        if num.notna().sum() >= raw[c].notna().sum():  # every value that is there is a number
            raw[c] = num
    return raw


def parse_dates(values: pd.Series, path: Path, column: str, fmt: str | None = None) -> pd.DatetimeIndex:
    """Dates in `fmt`, else the one format of :data:`DATE_FORMATS` that reads every value as a daily record
    (ISO, day-first 01.01.1979, ...); ambiguous or unreadable dates name the `date_format` parameter."""
    text = values.astype(str).str.strip()
    fits = []
    for f in ([fmt] if fmt else DATE_FORMATS):
        try:
            idx = pd.DatetimeIndex(pd.to_datetime(text, format=f), name="date")
        except (ValueError, TypeError):
            continue
        fits.append((f, idx))
        if len(idx) < 2 or ((np.diff(idx.values) == np.timedelta64(1, "D")).all()):
            return idx
    if fits:
        return fits[0][1]  # readable but not daily: check_daily names the first gap
    sample = text.iloc[0] if len(text) else ""
    for f in [fmt] if fmt else DATE_FORMATS:  # name the first value the likeliest format cannot read
        bad = pd.to_datetime(text, format=f, errors="coerce").isna()
        if not bad.all():
            sample = f"{text[bad].iloc[0]!r} (row {int(bad.values.argmax()) + 1} of the data)"
            break
    raise config_error(path, column, f"dates such as {sample} cannot be read"
                       + (f" with date_format {fmt!r}" if fmt else f" in any of {', '.join(DATE_FORMATS)}"),
                       "set the stage parameter `date_format` to their strftime format (e.g. '%d.%m.%Y'), "
                       "or write ISO dates such as 2001-12-31")


def user_csv(path: str | Path, flow: str = "flow", forcings: list[str] | None = None,
             lat: float | None = None, date: str = "date", date_format: str | None = None) -> Basin:
    """A CSV/Parquet with a date column, forcing columns and a flow column (PET derived if asked); a units row
    under the header and day-first dates are read too."""
    path = Path(os.path.expanduser(str(path)))
    raw = drop_units_row(read_table(path), date)
    need = [date, flow] + list(forcings or [])
    if forcings and "pet" in forcings and "pet" not in raw.columns:
        need.remove("pet")
        need.append("tmean")
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise config_error(path, "columns", f"missing column(s) {', '.join(missing)} (found: "
                           f"{', '.join(map(str, raw.columns))})",
                           "add them, or set the stage parameters `flow_column` and `forcings` to the names used")
    index = parse_dates(raw[date], path, date, date_format)
    if forcings is None:
        forcings = [c for c in raw.columns if c not in (date, flow) and pd.api.types.is_numeric_dtype(raw[c])]
    keep = [c for c in forcings if c in raw.columns]
    if "tmean" in raw.columns and "tmean" not in keep:
        keep.append("tmean")
    frame = pd.DataFrame({c: pd.to_numeric(raw[c], errors="coerce").values for c in keep + [flow]}, index=index)
    frame = frame.rename(columns={flow: "flow"})
    check_daily(frame, str(path), path.stem)
    if "pet" in forcings and "pet" not in frame.columns:
        if lat is None:
            raise config_error(path, "lat", "a 'pet' forcing is asked for but the file has none and no latitude is "
                               "given to derive it", "add a pet column or set the stage parameter `lat`")
        frame["pet"] = oudin_pet(frame["tmean"].values, frame.index.day_of_year.values, float(lat))
    frame = frame[list(forcings) + ["flow"]]
    return Basin(path.stem, frame, list(forcings), "as given", str(path), lat=lat)


def check_daily(frame: pd.DataFrame, source: str, basin: str) -> None:
    """Dates strictly increasing and daily without gaps; no negative streamflow."""
    if "flow" in frame.columns:
        neg = frame.index[frame["flow"].values < 0]
        if len(neg):
            raise config_error(source, "flow", f"basin '{basin}': {len(neg)} day(s) of negative streamflow, first "
                               f"{neg[0].date()} ({frame['flow'][neg[0]]:g})", "streamflow cannot be negative: "
                               "leave missing days empty (NaN) instead of a negative fill value, or fix the sign")
    idx = frame.index
    step = np.diff(idx.values)
    if (step <= np.timedelta64(0)).any():
        i = int(np.argmax(step <= np.timedelta64(0)))
        raise config_error(source, "date", f"basin '{basin}': dates are not strictly increasing "
                           f"({idx[i].date()} is followed by {idx[i + 1].date()})",
                           "sort the rows by date and remove duplicate days")
    expected = pd.date_range(idx[0], idx[-1], freq="D")
    if len(expected) != len(idx):
        missing = expected.difference(idx)
        raise config_error(source, "date", f"basin '{basin}': {len(missing)} missing day(s) in the daily record, "
                           f"first {missing[0].date()}", "fill the missing days (forcings are required every day; "
                           "flow may be NaN) or cut the record")


def load_basins(spec: str, params: dict[str, Any] | None = None) -> list[Basin]:
    """Basins named by a `basin` parameter (one string or a comma-free list handled by the caller)."""
    params = params or {}
    spec = str(spec).strip()
    if spec == "leaf_river":
        return [leaf_river()]
    if spec.startswith("lumod:"):
        return [lumod_catchment(spec.split(":", 1)[1])]
    if spec.startswith("camels:"):
        root, _, gauges = spec[len("camels:"):].rpartition(":")
        if not root:
            raise DeepRCError(f"stage parameter 'basin': '{spec}' must look like camels:<dir>:<gauge_id>[,<gauge_id>...] "
                              "or camels:<dir>:all. Fix: name the CAMELS-US folder and the gauge(s).")
        source = params.get("forcing_source", "daymet")
        ids = camels_gauges(root, source) if gauges == "all" else [g for g in gauges.split(",") if g]
        if not ids:
            raise config_error(Path(root) / "basin_mean_forcing" / source, "basin", "no basin found",
                               "check the CAMELS-US folder layout")
        return [camels_basin(root, g, source) for g in ids]
    if Path(os.path.expanduser(spec)).suffix.lower() in (".csv", ".parquet", ".pq"):
        return [user_csv(spec, flow=params.get("flow_column", "flow"), forcings=params.get("forcings"),
                         lat=params.get("lat"), date=params.get("date_column", "date"),
                         date_format=params.get("date_format"))]
    raise DeepRCError(f"stage parameter 'basin': unknown basin '{spec}'. Fix: use leaf_river, lumod:example1..3, "
                      "camels:<dir>:<gauge_id> or a path to a CSV with date, forcing and flow columns.")
