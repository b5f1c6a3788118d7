"""Stage functions of the forecast and hydrology pipelines (contract: deeprc.stage).

Each runs on every rank of its stage; rank 0 writes the shared files and its return value
becomes the stage's metrics.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deeprc.errors import DeepRCError
from deeprc.stage import StageContext
from deeprc.workloads.common import json_float, markdown_table, on_root, param, progress, upstream_with


# ------------------------------------------------------------------------------------------ forecasting
def _split_last(df: pd.DataFrame, horizon: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per series (rows sorted by unique_id, ds): all but the last `horizon` rows, and those rows."""
    pos = df.groupby("unique_id", sort=False).cumcount(ascending=False)
    return df[pos >= horizon].reset_index(drop=True), df[pos < horizon].reset_index(drop=True)


def _split_distributed(comm: Any, df: pd.DataFrame | None, empty: pd.DataFrame,
                       horizon: int) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Partition the series over the ranks with deeprc.data, split each locally, gather on rank 0."""
    import pyarrow as pa

    from deeprc.data import DTable
    from deeprc.data.timeseries import by_series

    local = pa.Table.from_pandas(df if comm.rank == 0 else empty, preserve_index=False)
    table = by_series(DTable.from_arrow(local, comm, source="forecast data"), "unique_id", "ds")
    train, test = _split_last(table.to_arrow().to_pandas(), horizon)
    schema = local.schema
    parts = [DTable.from_arrow(pa.Table.from_pandas(part, schema=schema, preserve_index=False), comm,
                               check_schema=False).gather() for part in (train, test)]
    if comm.rank != 0:
        return None
    return tuple(p.to_pandas().sort_values(["unique_id", "ds"]).reset_index(drop=True) for p in parts)


def prepare_forecast(ctx: StageContext) -> dict:
    """Load and validate a long-format data set; write train.parquet and test.parquet (last `horizon` points)."""
    from deeprc.workloads.forecast_data import check_length, load_forecast

    dataset = param(ctx, "dataset", "airpassengers", str)
    horizon = param(ctx, "horizon", 12, int)
    input_size = param(ctx, "input_size", 2 * horizon, int)

    def load() -> tuple[pd.DataFrame, dict]:
        data = load_forecast(dataset, param(ctx, "freq"))
        check_length(data, input_size, horizon)
        meta = {"dataset": dataset, "source": data.source, "freq": data.freq, "season": data.season,
                "horizon": horizon, "input_size": input_size, "series": int(data.df["unique_id"].nunique()),
                "rows": len(data.df)}
        return data.df, meta

    df, meta = on_root(ctx.comm, load, share=lambda r: (r[0].iloc[:0], r[1]))
    empty, df = df.iloc[:0], (df if ctx.rank == 0 else None)
    split = _split_distributed(ctx.comm, df, empty, horizon)
    if ctx.rank != 0:
        return {}
    train, test = split
    ctx.outdir.mkdir(parents=True, exist_ok=True)
    train.to_parquet(ctx.outdir / "train.parquet", index=False)
    test.to_parquet(ctx.outdir / "test.parquet", index=False)
    meta.update(train_rows=len(train), test_rows=len(test), ranks=ctx.size)
    (ctx.outdir / "meta.json").write_text(json.dumps(meta, indent=2))
    ctx.log.info("prepared %s: %d series, %d train rows, %d test rows", dataset, meta["series"], len(train), len(test))
    return meta


def train_forecast(ctx: StageContext) -> dict:
    """Train neuralforecast model(s) on train.parquet, forecast the held-out horizon, score against seasonal naive."""
    from deeprc.workloads import forecast as fc
    from deeprc.workloads.plots import forecast_plot

    src = upstream_with(ctx, "train.parquet", "prepare_forecast")
    meta = json.loads((src / "meta.json").read_text()) if (src / "meta.json").is_file() else {}
    train = pd.read_parquet(src / "train.parquet")
    test = pd.read_parquet(src / "test.parquet")
    names = param(ctx, "models") or param(ctx, "model", "NHITS")
    names = [names] if isinstance(names, str) else list(names)
    names = [fc.model_class(n).__name__ for n in names]
    horizon = param(ctx, "horizon", meta.get("horizon", 12), int)
    input_size = param(ctx, "input_size", meta.get("input_size", 2 * horizon), int)
    max_steps = param(ctx, "max_steps", 300, int)
    batch_size = param(ctx, "batch_size", 32, int)
    seed = param(ctx, "seed", ctx.seed, int)
    freq = meta.get("freq") or param(ctx, "freq", "ME", str)
    season = int(meta.get("season", 1))
    extra = {k: v for k, v in ctx.params.items() if k not in fc.OWN_PARAMS}
    if horizon != int(test.groupby("unique_id").size().max()):
        raise DeepRCError(f"stage '{ctx.name}' parameter 'horizon' is {horizon} but the upstream test set holds "
                          f"{int(test.groupby('unique_id').size().max())} points per series. Fix: use the same "
                          "horizon in the preparation and training stages.")
    transform = fc.check_transform(param(ctx, "transform", "none", str), ctx.name)
    fit_df = fc.seasonal_difference(train, season) if transform == "seasonal_diff" else train
    shortest = int(fit_df.groupby("unique_id").size().min()) if len(fit_df) else 0
    if transform != "none" and shortest < input_size + horizon:  # prepare_forecast checked the untransformed
        raise DeepRCError(f"stage '{ctx.name}': with transform '{transform}' the shortest training series has "
                          f"{shortest} points, fewer than input_size {input_size} + horizon {horizon}. "
                          "Fix: lower input_size, or use transform: none.")
    fc.set_threads(param(ctx, "threads", 1, int))
    n_series = int(train["unique_id"].nunique())
    models = [fc.make_model(n, horizon=horizon, input_size=input_size, max_steps=max_steps, batch_size=batch_size,
                            seed=seed, n_series=n_series, comm=ctx.comm, extra=extra,
                            scaler_type=param(ctx, "scaler_type", "robust", str)) for n in names]
    config = {"models": names, "horizon": horizon, "input_size": input_size, "max_steps": max_steps,
              "batch_size": batch_size, "seed": seed, "extra": extra, "data": meta, "train_rows": len(train),
              "transform": transform}
    started = time.perf_counter()
    ckpt = ctx.outdir / "checkpoint"
    ctx.outdir.mkdir(parents=True, exist_ok=True)
    ctx.log.info("training %s (max_steps %d) on %d series over %d rank(s)", ", ".join(names), max_steps,
                 n_series, ctx.size)
    nf, resumed = fc.fit_or_resume(models, fit_df, freq, ckpt, config, bool(param(ctx, "resume", True)),
                                   ctx.rank, ctx.log)
    seconds = time.perf_counter() - started
    if ctx.size > 1:
        fc.single_device(nf)
        ctx.comm.barrier()
        fc.leave_process_group()
    if ctx.rank != 0:
        return {}
    pred = fc.predict(nf, fit_df, names)
    if transform == "seasonal_diff":
        pred = fc.undo_seasonal_difference(pred, train, season)
    pred = pd.concat([pred, fc.seasonal_naive_frame(train, test, season)], ignore_index=True)
    scores = fc.score(pred, train, test, season)
    summary = fc.summarise(scores)
    pred.merge(test[["unique_id", "ds", "y"]], on=["unique_id", "ds"], how="left").to_parquet(
        ctx.outdir / "predictions.parquet", index=False)
    scores.assign(stage=ctx.name, kind="forecast", dataset=str(meta.get("dataset", ""))).to_parquet(
        ctx.outdir / "metrics.parquet", index=False)
    plot_series = param(ctx, "plot_series", 4, int)
    if plot_series > 0:  # 0: no figure
        forecast_plot(train, test, pred, ctx.outdir / f"forecast_{'_'.join(names)}.png", max_series=plot_series)
    naive = summary.set_index("model").loc["SeasonalNaive"]
    out: dict[str, Any] = {}
    for _, row in summary.iterrows():
        prefix = "" if row["model"] == names[0] else ("naive_" if row["model"] == "SeasonalNaive" else f"{row['model']}_")
        for metric in ("MAE", "RMSE", "sMAPE", "MASE"):
            out[prefix + metric] = json_float(row[metric])
    out["beats_naive"] = bool(out["MASE"] is not None and out["MASE"] < float(naive["MASE"]))
    out.update(models=names, dataset=meta.get("dataset"), series=n_series, train_seconds=round(seconds, 2),
               resumed=resumed, ranks=ctx.size, transform=transform)
    ctx.log.info("%s", markdown_table(summary))
    return out


# ------------------------------------------------------------------------------------------ hydrology
def _prepare_basin(basin: Any, forcings: list[str], test_years: int, seq_len: int) -> tuple[pd.DataFrame, dict]:
    """One basin's rows with a split column, and its training-period normalisation statistics."""
    from deeprc.errors import config_error

    frame = basin.frame
    missing = [c for c in forcings if c not in frame.columns]
    if missing:
        raise config_error(basin.source, "forcings", f"basin '{basin.name}' has no column(s) {', '.join(missing)} "
                           f"(it has {', '.join(basin.forcings)})", "choose forcings that every basin has")
    bad = frame[forcings].isna().any(axis=1)
    if bad.any():
        raise config_error(basin.source, "forcings", f"basin '{basin.name}' has {int(bad.sum())} day(s) with missing "
                           f"forcings, first {frame.index[bad.values][0].date()}",
                           "fill the forcing gaps (flow may be missing, forcings may not)")
    test_start = frame.index[-1] - pd.DateOffset(years=test_years) + pd.Timedelta(days=1)
    is_test = frame.index >= test_start
    n_train = int((~is_test).sum())
    if n_train < seq_len + 30 or frame["flow"][is_test].notna().sum() == 0:
        raise config_error(basin.source, "date", f"basin '{basin.name}' has {len(frame)} days: {n_train} before the "
                           f"last {test_years} test year(s), too short for seq_len {seq_len} (needs at least "
                           f"{seq_len + 30} training days and observed flow in the test years)",
                           "use a longer record, fewer test_years or a shorter seq_len")
    train = frame[~is_test]
    stats = {c: [float(train[c].mean()), float(train[c].std()) or 1.0] for c in forcings + ["flow"]}
    rows = frame[forcings + ["flow"]].reset_index().rename(columns={frame.index.name or "index": "date"})
    rows.insert(0, "basin", basin.name)
    rows["split"] = np.where(is_test, "test", "train")
    info = {"stats": stats, "units": basin.flow_units, "area_km2": basin.area_km2, "lat": basin.lat,
            "source": basin.source, "test_start": str(test_start.date()), "days": len(frame)}
    return rows, info


def prepare_hydrology(ctx: StageContext) -> dict:
    """Load basin(s), derive PET where missing, split off the last `test_years`; write basin.parquet + norm.json."""
    from deeprc.data._comm import collective
    from deeprc.workloads.hydro_data import load_basins

    specs = param(ctx, "basin", "leaf_river")
    specs = [specs] if isinstance(specs, str) else list(specs)
    test_years = param(ctx, "test_years", 2, int)
    seq_len = param(ctx, "seq_len", 365, int)

    def load_mine() -> list[tuple[pd.DataFrame, dict, list[str]]]:
        out = []
        for i, spec in enumerate(specs):
            if i % ctx.size != ctx.rank:  # basins are shared out over the ranks
                continue
            for basin in load_basins(spec, ctx.params):
                forcings = list(param(ctx, "forcings") or basin.forcings)
                rows, info = _prepare_basin(basin, forcings, test_years, seq_len)
                out.append((rows, {basin.name: info}, forcings))
        return out

    mine = collective(ctx.comm, load_mine)
    gathered = ctx.comm.gather(mine, root=0) if ctx.size > 1 else [mine]
    if ctx.rank != 0:
        return {}
    parts = [item for rank_items in gathered for item in rank_items]
    table = pd.concat([p[0] for p in parts], ignore_index=True)
    shared = [c for c in parts[0][2] if all(c in p[2] for p in parts)]
    norm = {"forcings": shared, "test_years": test_years, "basins": {}}
    for _, info, f in parts:  # each basin keeps its own forcings; a model trains on one set (train_hydrology)
        norm["basins"].update({name: dict(i, forcings=f) for name, i in info.items()})
    ctx.outdir.mkdir(parents=True, exist_ok=True)
    table.to_parquet(ctx.outdir / "basin.parquet", index=False)
    (ctx.outdir / "norm.json").write_text(json.dumps(norm, indent=2))
    counts = table.groupby("split").size().to_dict()
    ctx.log.info("prepared %d basin(s) with forcings %s", len(norm["basins"]), shared)
    return {"basins": list(norm["basins"]), "forcings": shared, "train_days": int(counts.get("train", 0)),
            "test_days": int(counts.get("test", 0)), "test_years": test_years}


def _stage_forcings(stage: str, norm: dict, basins: list[str]) -> list[str]:
    """The forcings shared by the basins one model trains on (an error when they differ)."""
    sets = {b: norm["basins"][b].get("forcings", norm["forcings"]) for b in basins}
    first = sets[basins[0]]
    for name, f in sets.items():
        if f != first:
            raise DeepRCError(f"stage '{stage}': basins '{basins[0]}' and '{name}' have different forcings ({first} vs "
                              f"{f}), so one model cannot train on both. Fix: set prepare_hydrology's params.forcings "
                              "to columns every basin has, or train them in separate stages (params.basins).")
    return first


def train_hydrology(ctx: StageContext) -> dict:
    """Train an LSTM/GRU/TCN rainfall-runoff model (MultiWorkerMirroredStrategy when ranks > 1); score per basin."""
    from deeprc.workloads import hydrology as hy
    from deeprc.workloads.metrics import hydro_scores
    from deeprc.workloads.plots import hydrograph

    src = upstream_with(ctx, "basin.parquet", "prepare_hydrology")
    table = pd.read_parquet(src / "basin.parquet")
    norm = json.loads((src / "norm.json").read_text())
    only = param(ctx, "basins")
    if only:  # a subset of the prepared basins (one model per basin: one stage each)
        only = [only] if isinstance(only, str) else list(only)
        unknown = [b for b in only if b not in norm["basins"]]
        if unknown:
            raise DeepRCError(f"stage '{ctx.name}' parameter 'basins': {', '.join(unknown)} not prepared upstream "
                              f"(prepared: {', '.join(norm['basins'])}). Fix: name prepared basins, or add them to "
                              "prepare_hydrology's `basin` list.")
        table = table[table["basin"].isin(only)]
    arch = param(ctx, "arch", "lstm", str).lower()
    if arch not in hy.ARCHS:
        raise DeepRCError(f"stage '{ctx.name}' parameter 'arch': unknown architecture '{arch}'. "
                          f"Fix: use one of {', '.join(hy.ARCHS)}.")
    seq_len = param(ctx, "seq_len", 180, int)
    epochs = param(ctx, "epochs", 15, int)
    batch_size = param(ctx, "batch_size", 64, int)
    units = param(ctx, "units", 32, int)
    lr = param(ctx, "lr", 0.003, float)
    seed = param(ctx, "seed", ctx.seed, int)
    forcings = _stage_forcings(ctx.name, norm, list(table["basin"].unique()))
    xs, ys, evals = [], [], []
    for name, part in table.groupby("basin", sort=False):
        stats = norm["basins"][name]["stats"]
        feats = np.column_stack([(part[c].to_numpy() - stats[c][0]) / stats[c][1] for c in forcings])
        flow = part["flow"].to_numpy(dtype=float)
        target = (flow - stats["flow"][0]) / stats["flow"][1]
        is_test = (part["split"] == "test").to_numpy()
        idx = np.arange(len(part))
        train_rows = idx[(~is_test) & (idx >= seq_len - 1) & np.isfinite(target)]
        test_rows = idx[is_test & (idx >= seq_len - 1)]
        if len(train_rows) == 0:
            raise DeepRCError(f"stage '{ctx.name}': basin '{name}' has no training sequence of seq_len {seq_len}. "
                              "Fix: lower seq_len or give a longer record.")
        x, y = hy.windows(feats, target, seq_len, train_rows)
        xs.append(x)
        ys.append(y)
        evals.append((name, part.iloc[test_rows], hy.windows(feats, target, seq_len, test_rows)[0]))
    x_train, y_train = np.concatenate(xs), np.concatenate(ys)
    x_eval = np.concatenate([e[2] for e in evals])
    ctx.log.info("training %s on %d sequences of %d days (%d basin(s), %d rank(s))", arch, len(x_train), seq_len,
                 len(evals), ctx.size)
    started = time.perf_counter()
    with progress(epochs, f"{arch} epochs", ctx.rank == 0, ctx.log) as update:
        sim, losses = hy.fit_predict(x_train, y_train, x_eval, arch=arch, units=units, epochs=epochs,
                                     batch_size=batch_size, lr=lr, seed=seed, comm=ctx.comm,
                                     threads=param(ctx, "threads", 1, int),
                                     progress=lambda e, loss: update(e, f"loss {loss:.4f}"))
    seconds = time.perf_counter() - started
    if ctx.rank != 0:
        return {}
    ctx.outdir.mkdir(parents=True, exist_ok=True)
    rows, preds, offset = [], [], 0
    for name, part, x in evals:
        stats = norm["basins"][name]["stats"]
        simulated = sim[offset:offset + len(x)] * stats["flow"][1] + stats["flow"][0]
        offset += len(x)
        observed = part["flow"].to_numpy(dtype=float)
        rows.append({"model": arch, "basin": name, **hydro_scores(observed, simulated)})
        preds.append(pd.DataFrame({"basin": name, "date": part["date"].values, "observed": observed,
                                   "simulated": simulated, "model": arch}))
        if len(preds) <= 10:
            units_label = norm["basins"][name].get("units", "")
            hydrograph(part["date"], observed, simulated, f"{name}: {arch} (NSE {rows[-1]['NSE']:.2f})",
                       ctx.outdir / f"hydrograph_{name}.png", f"({units_label})")
    pd.concat(preds, ignore_index=True).to_parquet(ctx.outdir / "predictions.parquet", index=False)
    scores = pd.DataFrame(rows)
    scores.assign(stage=ctx.name, kind="hydrology").to_parquet(ctx.outdir / "metrics.parquet", index=False)
    out: dict[str, Any] = {}
    for metric in ("NSE", "KGE", "RMSE"):  # median over basins
        out[metric] = json_float(scores[metric].median())
    out.update(arch=arch, basins=len(rows), train_seconds=round(seconds, 2), final_loss=json_float(losses[-1]),
               ranks=ctx.size, sequences=len(x_train))
    if 1 < len(rows) <= 10:
        for r in rows:
            out.update({f"{m}_{r['basin']}": json_float(r[m]) for m in ("NSE", "KGE")})
    ctx.log.info("%s", markdown_table(scores))
    return out


# ------------------------------------------------------------------------------------------ evaluation
def evaluate(ctx: StageContext) -> dict:
    """Combine every upstream metrics.parquet into metrics.parquet, summary.md and comparison plots."""
    from deeprc.workloads.plots import metric_bars

    if ctx.rank != 0:
        return {}
    frames = []
    for name, folder in ctx.inputs.items():
        path = Path(folder) / "metrics.parquet"
        if path.is_file():
            frames.append(pd.read_parquet(path).assign(stage=name))
    if not frames:
        raise DeepRCError(f"stage '{ctx.name}': no upstream stage wrote metrics.parquet (inputs: "
                          f"{', '.join(ctx.inputs) or 'none'}). Fix: make evaluate depend on the training stages.")
    table = pd.concat(frames, ignore_index=True)
    ctx.outdir.mkdir(parents=True, exist_ok=True)
    table.to_parquet(ctx.outdir / "metrics.parquet", index=False)
    out: dict[str, Any] = {"rows": len(table)}
    text = [f"# Evaluation ({ctx.profile} profile)\n"]
    if "kind" in table and (table["kind"] == "forecast").any():
        fc = table[table["kind"] == "forecast"]
        fc = fc.assign(dataset=fc["dataset"].fillna("") if "dataset" in fc else "")
        summary = (fc.groupby(["dataset", "stage", "model"], sort=False)[["MAE", "RMSE", "sMAPE", "MASE"]].mean()
                   .reset_index())
        datasets = list(dict.fromkeys(summary["dataset"]))
        parts = []
        for i, ds in enumerate(datasets):  # seasonal naive is the reference of its own data set
            mine = summary[summary["dataset"] == ds]
            naive = mine[mine["model"] == "SeasonalNaive"].drop_duplicates("model")
            models = mine[mine["model"] != "SeasonalNaive"].sort_values("MASE")
            parts += [models, naive]
            prefix = "" if i == 0 else f"{ds}_"
            if len(models):
                best = models.iloc[0]
                out.update({f"{prefix}best_forecast_model": str(best["model"]),
                            f"{prefix}best_MASE": json_float(best["MASE"]),
                            f"{prefix}best_sMAPE": json_float(best["sMAPE"])})
            if len(naive):
                out[f"{prefix}naive_MASE"] = json_float(naive["MASE"].iloc[0])
                beat = int((models["MASE"] < naive["MASE"].iloc[0]).sum())
                out[f"{prefix}models_beating_naive"] = f"{beat}/{len(models)}"
        summary = pd.concat(parts, ignore_index=True)
        if len(datasets) == 1:
            summary = summary.drop(columns="dataset")
        text += ["## Forecasting (mean over series, held-out horizon)\n", markdown_table(summary)]
        first = summary[summary.get("dataset", pd.Series(datasets[0], index=summary.index)) == datasets[0]]
        metric_bars(first.assign(label=first["model"]), "MASE", "label", ctx.outdir / "forecast_mase.png", 1.0)
    if "kind" in table and (table["kind"] == "hydrology").any():
        hy = table[table["kind"] == "hydrology"]
        summary = hy[["stage", "model", "basin", "NSE", "KGE", "RMSE"]].sort_values("NSE", ascending=False)
        text += ["\n## Hydrology (test years, physical units)\n", markdown_table(summary)]
        per_model = hy.groupby(["stage", "model"], sort=False)["NSE"].median().reset_index()
        metric_bars(per_model.assign(label=per_model["stage"]), "NSE", "label", ctx.outdir / "hydrology_nse.png")
        best = per_model.sort_values("NSE", ascending=False).iloc[0]
        out.update(best_hydrology_stage=str(best["stage"]), best_NSE=json_float(best["NSE"]))
    (ctx.outdir / "summary.md").write_text("\n".join(text))
    return out
