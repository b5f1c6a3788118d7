"""Tiny stage functions for the runtime's own tests (real files, real ranks, real failures)."""

from __future__ import annotations

import json
import time

import numpy as np


def write(ctx):
    """Each rank writes part-<rank>.txt; rank 0 writes out.json with the upstream values + 1."""
    time.sleep(float(ctx.params.get("sleep", 0)))
    (ctx.outdir / f"part-{ctx.rank}.txt").write_text(f"{ctx.name} rank {ctx.rank}/{ctx.size}\n")
    up = sum(json.loads((p / "out.json").read_text())["value"] for p in ctx.inputs.values())
    value = up + int(ctx.params.get("add", 1))
    if ctx.rank == 0:
        (ctx.outdir / "out.json").write_text(json.dumps({"value": value, "size": ctx.size}))
        if ctx.params.get("plot"):
            plot_values(ctx.outdir / "values.png", {n: json.loads((p / "out.json").read_text())["value"]
                                                    for n, p in ctx.inputs.items()} | {ctx.name: value})
    return {"value": value, "ranks": ctx.size}


def plot_values(path, values):
    """A bar chart of the values (a real PNG for the report)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 2.5))
    ax.bar(list(values), list(values.values()), color="tab:blue")
    ax.set_title("stage values")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def allreduce(ctx):
    """Sum rank+1 across ranks: size*(size+1)/2 proves the ranks really talk."""
    time.sleep(float(ctx.params.get("sleep", 0)))
    total = ctx.comm.allreduce(np.array([ctx.rank + 1.0]), op="sum")
    if ctx.rank == 0:
        (ctx.outdir / "out.json").write_text(json.dumps({"value": float(total[0]), "size": ctx.size}))
    return {"sum": float(total[0]), "ranks": ctx.size}


def flaky(ctx):
    """Fail on the first attempt (marker file), succeed after."""
    marker = ctx.outdir / ".tried"
    if not marker.exists():
        ctx.comm.barrier()
        if ctx.rank == 0:
            marker.write_text("1")
        raise RuntimeError("flaky stage fails on its first attempt")
    if ctx.rank == 0:
        (ctx.outdir / "out.json").write_text(json.dumps({"value": 1, "size": ctx.size}))
    return {"recovered": 1}


def broken(ctx):
    raise ValueError("this stage always fails")


def echo(ctx):
    """Write what reached the stage (its params and the variables named by `show`) to out.json, byte for byte."""
    import os

    if ctx.rank == 0:
        got = {"params": ctx.params, "env": {k: os.environ.get(k) for k in ctx.params.get("show", [])}}
        (ctx.outdir / "out.json").write_text(json.dumps(got))
    return {"ok": 1}


def load_basin(ctx):
    """Load the `basin` parameter with DeepRC's real hydrology loader (its errors are the user's errors)."""
    from deeprc.workloads.hydro_data import load_basins

    basins = load_basins(ctx.params["basin"], ctx.params)
    if ctx.rank == 0:
        (ctx.outdir / "out.json").write_text(json.dumps({"days": len(basins[0].frame)}))
    return {"days": len(basins[0].frame)}
