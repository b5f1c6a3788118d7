"""Tiny stage functions for the real-Slurm launch tests (imported by the jobs via PYTHONPATH)."""

from __future__ import annotations

import json
import time

import numpy as np


def prepare(ctx):  # noqa: ANN001, ANN201
    (ctx.outdir / "data.json").write_text(json.dumps({"ranks": ctx.comm.size}))
    return {"ranks": ctx.comm.size}


def train(ctx):  # noqa: ANN001, ANN201
    total = ctx.comm.allreduce(np.array([ctx.comm.rank + 1.0]), op="sum")
    time.sleep(float(ctx.params.get("sleep", 0)))
    if ctx.comm.rank == 0:
        (ctx.outdir / "model.json").write_text(json.dumps({"sum": float(total[0])}))
    return {"sum": float(total[0]), "size": ctx.comm.size}
