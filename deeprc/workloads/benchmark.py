"""Full-size result runs behind docs/results.md: each configuration through the real stage functions.

    python -m deeprc.workloads.benchmark forecast --dataset airpassengers --models all --out R.jsonl
    python -m deeprc.workloads.benchmark hydrology --basin leaf_river --arch lstm,gru --seeds 0,1,2 --out R.jsonl
    python -m deeprc.workloads.benchmark table R.jsonl
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

import click
import pandas as pd

from deeprc.stage import StageContext
from deeprc.workloads.common import markdown_table


def _ctx(comm: object, run: Path, name: str, params: dict, inputs: dict[str, Path], seed: int) -> StageContext:
    return StageContext(name=name, comm=comm, params=params, inputs=inputs, outdir=run / name, run_dir=run,
                        seed=seed, log=logging.getLogger(f"benchmark.{name}"))


def _append(out: Path, row: dict) -> None:
    with open(out, "a") as fh:
        fh.write(json.dumps(row) + "\n")
    click.echo(json.dumps(row))


ORDER = {"forecast": ["kind", "dataset", "model", "horizon", "input_size", "max_steps", "seed", "MAE", "RMSE",
                      "sMAPE", "MASE", "naive_MASE", "naive_sMAPE", "seconds"],
         "hydrology": ["kind", "basin", "arch", "seed", "seq_len", "units", "epochs", "NSE", "KGE", "RMSE", "seconds"]}


def _json_params(ctx: click.Context, param: click.Parameter, value: str) -> dict:
    """--params as a dict (a clear usage error when it is not a JSON object)."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON ({exc}); give an object such as '{{\"transform\": \"seasonal_diff\"}}'")
    if not isinstance(parsed, dict):
        raise click.BadParameter("give a JSON object of stage parameters, such as '{\"transform\": \"seasonal_diff\"}'")
    return parsed


@click.group()
def cli() -> None:
    """Run full-size configurations and tabulate them."""
    logging.basicConfig(level=logging.WARNING)


@cli.command()
@click.option("--dataset", default="airpassengers")
@click.option("--horizon", default=12, type=int)
@click.option("--input-size", default=24, type=int)
@click.option("--max-steps", default=500, type=int)
@click.option("--models", default="all", help="comma-separated names or 'all'")
@click.option("--seed", default=1, type=int)
@click.option("--params", "extra", default="{}", callback=_json_params,
              help="more stage parameters as JSON, e.g. '{\"transform\": \"seasonal_diff\"}'")
@click.option("--out", type=click.Path(path_type=Path), required=True)
def forecast(dataset: str, horizon: int, input_size: int, max_steps: int, models: str, seed: int, extra: dict,
             out: Path) -> None:
    """Train each model on DATASET and append its scores (and seasonal naive's) to OUT."""
    import deeprc.comm
    from deeprc.workloads import stages
    from deeprc.workloads.forecast import MODELS

    comm = deeprc.comm.init()
    names = list(MODELS) if models == "all" else models.split(",")
    with tempfile.TemporaryDirectory(prefix="deeprc-bench-") as tmp:
        run = Path(tmp)
        prep = {"dataset": dataset, "horizon": horizon, "input_size": input_size}
        stages.prepare_forecast(_ctx(comm, run, "prepare_forecast", prep, {}, seed))
        for name in names:
            started = time.perf_counter()
            params = dict(prep, **extra, model=name, max_steps=max_steps, resume=False)
            try:
                m = stages.train_forecast(_ctx(comm, run, f"train_{name}", params,
                                               {"prepare_forecast": run / "prepare_forecast"}, seed))
            except Exception as exc:  # noqa: BLE001 - one failing model must not stop the table
                _append(out, {"kind": "forecast", "dataset": dataset, "model": name, "error": str(exc)[:300]})
                continue
            _append(out, {"kind": "forecast", "dataset": dataset, "model": name, "horizon": horizon,
                          "input_size": input_size, "max_steps": max_steps, "seed": seed,
                          **({"params": json.dumps(extra, sort_keys=True)} if extra else {}),
                          **{k: m[k] for k in ("MAE", "RMSE", "sMAPE", "MASE", "naive_MASE", "naive_sMAPE")},
                          "seconds": round(time.perf_counter() - started, 1)})


@cli.command()
@click.option("--basin", default="leaf_river")
@click.option("--arch", default="lstm,gru")
@click.option("--seeds", default="0")
@click.option("--seq-len", default=180, type=int)
@click.option("--units", default=32, type=int)
@click.option("--epochs", default=15, type=int)
@click.option("--batch-size", default=64, type=int)
@click.option("--lr", default=0.003, type=float)
@click.option("--out", type=click.Path(path_type=Path), required=True)
def hydrology(basin: str, arch: str, seeds: str, seq_len: int, units: int, epochs: int, batch_size: int, lr: float,
              out: Path) -> None:
    """Train each architecture and seed on BASIN (last two years held out) and append NSE/KGE/RMSE to OUT."""
    import deeprc.comm
    from deeprc.workloads import stages

    comm = deeprc.comm.init()
    with tempfile.TemporaryDirectory(prefix="deeprc-bench-") as tmp:
        run = Path(tmp)
        stages.prepare_hydrology(_ctx(comm, run, "prepare_hydrology",
                                      {"basin": basin, "test_years": 2, "seq_len": seq_len}, {}, 0))
        for a in arch.split(","):
            for seed in [int(s) for s in seeds.split(",")]:
                started = time.perf_counter()
                params = {"arch": a, "seq_len": seq_len, "units": units, "epochs": epochs,
                          "batch_size": batch_size, "lr": lr, "seed": seed}
                m = stages.train_hydrology(_ctx(comm, run, f"train_{a}_{seed}", params,
                                                {"prepare_hydrology": run / "prepare_hydrology"}, seed))
                _append(out, {"kind": "hydrology", "basin": basin, "arch": a, "seed": seed, "seq_len": seq_len,
                              "units": units, "epochs": epochs, "NSE": m["NSE"], "KGE": m["KGE"],
                              "RMSE": m["RMSE"], "seconds": round(time.perf_counter() - started, 1)})


@cli.command()
@click.argument("results", type=click.Path(exists=True, path_type=Path))
def table(results: Path) -> None:
    """Markdown tables of a results file."""
    rows = pd.read_json(results, lines=True)
    config = [c for c in rows.columns if c not in ("seconds", "MAE", "RMSE", "sMAPE", "MASE", "naive_MASE",
                                                   "naive_sMAPE", "NSE", "KGE", "error")]
    rows = rows.drop_duplicates(subset=config, keep="first")  # a rerun of the same configuration
    for kind, part in rows.groupby("kind", sort=False):
        order = ORDER.get(kind, [])
        part = part.dropna(axis=1, how="all")
        part = part[[c for c in order if c in part.columns] + [c for c in part.columns if c not in order]]
        for col in ("seed", "horizon", "input_size", "max_steps", "seq_len", "units", "epochs"):
            if col in part.columns:
                part[col] = part[col].astype("Int64")
        click.echo(f"\n### {kind}\n")
        click.echo(markdown_table(part.drop(columns=["kind"])))


if __name__ == "__main__":
    cli()
