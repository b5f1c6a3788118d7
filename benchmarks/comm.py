#!/usr/bin/env python
"""Allreduce through DeepRC's communicator vs raw mpi4py and raw torch.distributed, same run.

    .venv/bin/python benchmarks/comm.py --ranks 2 [--max-mib 64] [--json out.json]

Starts the ranks itself with mpiexec (this file is also the rank program). Reports the
median (and best-of-reps) time per allreduce of float32 buffers from 8 B to 64 MiB, bandwidth, the cost of
the abstraction (targets: <= 5 % bandwidth at >= 1 MiB, <= 20 us latency at 8 B) and the
bootstrap time of ``deeprc.comm.init`` for 2 and 4 ranks.

Each DeepRC call is compared with the raw call doing the same work: ``allreduce(x, out=x)``
(in place) with ``Allreduce(a, b)`` / ``dist.all_reduce(t)``, and ``allreduce(x)`` (returns a new
result, input untouched) with the raw idiom for that (a fresh receive buffer / ``t.clone()``).
The value-returning call is also shown against the in-place raw call, so the copy it pays is visible.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

MARK = "BENCHJSON "

# (label, raw call, DeepRC call doing the same work)
PAIRS = (
    ("mpi in place", "raw mpi4py", "deeprc mpi out="),
    ("mpi new result", "raw mpi4py new", "deeprc mpi"),
    ("gloo in place", "raw torch gloo", "deeprc gloo out="),
    ("gloo new result", "raw torch gloo new", "deeprc gloo"),
)


# -- rank side ----------------------------------------------------------------------------------
def _median_time(fn, iters: int, reps: int, barrier) -> list[float]:
    out = []
    for _ in range(reps):
        barrier()
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        out.append((time.perf_counter() - t0) / iters)
    return out


def rank_bench(max_bytes: int, reps: int) -> None:
    import numpy as np
    import torch
    import torch.distributed as dist
    from mpi4py import MPI

    import deeprc.comm as dc
    from deeprc.comm.rendezvous import free_port

    world = MPI.COMM_WORLD
    dmpi = dc.init("mpi")
    dgloo = dc.init("gloo")
    endpoint = world.bcast(("127.0.0.1", free_port()) if world.rank == 0 else None)
    dist.init_process_group("gloo", init_method=f"tcp://{endpoint[0]}:{endpoint[1]}", rank=world.rank,
                            world_size=world.size)
    sizes = [b for b in (8, 64, 512, 4096, 32768, 2**18, 2**20, 2**23, 2**26) if b <= max_bytes]
    rows = []
    for nbytes in sizes:
        n = max(1, nbytes // 4)
        a = np.ones(n, dtype=np.float32)
        b = np.empty_like(a)
        t = torch.ones(n)
        iters = max(5, min(2000, int(4e9 // max(nbytes, 1) // 50)))  # samples of ~50-200 ms above 1 MiB
        impls = {
            "raw mpi4py": lambda: world.Allreduce(a, b, MPI.SUM),
            "raw mpi4py new": lambda: world.Allreduce(a, np.empty_like(a), MPI.SUM),
            "deeprc mpi": lambda: dmpi.allreduce(a),
            "deeprc mpi out=": lambda: dmpi.allreduce(a, out=b),
            "raw torch gloo": lambda: dist.all_reduce(t),
            "raw torch gloo new": lambda: dist.all_reduce(t.clone()),
            "deeprc gloo": lambda: dgloo.allreduce(t),
            "deeprc gloo out=": lambda: dgloo.allreduce(t, out=t),
        }
        for fn in impls.values():  # warm up
            fn()
        samples = {k: [] for k in impls}
        names = list(impls)
        for rep in range(reps):  # interleave (rotating the order) so all see the same machine load
            for name in names[rep % len(names):] + names[: rep % len(names)]:
                samples[name] += _median_time(impls[name], iters, 1, world.Barrier)
        # per rep, the slowest rank's time per call; then median and best over reps
        per_rep = {k: [world.allreduce(x, op=MPI.MAX) for x in v] for k, v in samples.items()}
        times = {k: statistics.median(v) for k, v in per_rep.items()}
        best = {k: min(v) for k, v in per_rep.items()}
        # paired: raw / DeepRC within the same rep, whose neighbours in time share the machine's load
        paired = {ours: statistics.median(r / o for r, o in zip(per_rep[raw], per_rep[ours]))
                  for _, raw, ours in PAIRS}
        rows.append({"bytes": nbytes, "iters": iters, "seconds": times, "best_seconds": best,
                     "paired_ratio": paired})
    if world.rank == 0:
        print(MARK + json.dumps({"kind": "allreduce", "ranks": world.size, "rows": rows}), flush=True)
    dist.destroy_process_group()


def rank_overhead(reps: int) -> None:
    """Per-call software cost at 8 B on one rank (no peer to wait for: only the call path counts)."""
    import numpy as np
    import torch
    import torch.distributed as dist
    from mpi4py import MPI

    import deeprc.comm as dc
    from deeprc.comm.rendezvous import free_port

    world = MPI.COMM_WORLD
    dmpi, dgloo = dc.init("mpi"), dc.init("gloo")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    a, b, t = np.ones(2, np.float32), np.empty(2, np.float32), torch.ones(2)
    impls = {
        "raw mpi4py": lambda: world.Allreduce(a, b, MPI.SUM),
        "deeprc mpi": lambda: dmpi.allreduce(a),
        "deeprc mpi out=": lambda: dmpi.allreduce(a, out=b),
        "raw torch gloo": lambda: dist.all_reduce(t),
        "deeprc gloo": lambda: dgloo.allreduce(t),
        "deeprc gloo out=": lambda: dgloo.allreduce(t, out=t),
    }
    best = {k: min(_median_time(fn, 2000, max(reps, 10), lambda: None)) for k, fn in impls.items()}
    print(MARK + json.dumps({"kind": "overhead", "seconds": best}), flush=True)
    dist.destroy_process_group()


def rank_bootstrap(backend: str) -> None:
    t0 = time.perf_counter()
    import deeprc.comm as dc

    if backend != "mpi":
        import torch  # noqa: F401 - a framework import is not bootstrap cost

    t1 = time.perf_counter()
    comm = dc.init(backend)
    t2 = time.perf_counter()
    comm.barrier()
    init_s = comm.allreduce(t2 - t1, op="max")
    import_s = comm.allreduce(t1 - t0, op="max")
    if comm.rank == 0:
        print(MARK + json.dumps({"kind": "bootstrap", "backend": backend, "ranks": comm.size,
                                 "init_s": init_s, "import_s": import_s}), flush=True)


# -- driver side --------------------------------------------------------------------------------
def launch(ranks: int, args: list[str]) -> list[dict]:
    py = sys.executable
    mpiexec = str(Path(py).parent / "mpiexec")
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    cmd = [mpiexec, "-n", str(ranks), "--oversubscribe", py, __file__, "--rank-mode", *args]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"benchmark ranks failed ({shlex.join(cmd)}):\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
    out = [json.loads(line[len(MARK):]) for line in p.stdout.splitlines() if line.startswith(MARK)]
    for o in out:
        o["launch_wall_s"] = wall
    return out


def human(n: int) -> str:
    for unit, f in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= f:
            return f"{n / f:g} {unit}"
    return f"{n} B"


def _allreduce_table(console, res: dict) -> dict:
    from rich.table import Table

    verdict: dict = {}
    table = Table(title=f"allreduce float32 sum, {res['ranks']} ranks: median time per call over reps (slowest "
                        f"rank); ratio = median over reps of raw time / DeepRC time in the same rep (1.0 = no cost)")
    table.add_column("size", justify="right")
    for name, _, _ in PAIRS:
        for col in ("raw", "deeprc", "ratio"):
            table.add_column(f"{name}\n{col}", justify="right")
    for row in res["rows"]:
        s = row["seconds"]
        bw = lambda sec: row["bytes"] / sec / 2**20  # noqa: E731 - MiB/s
        cells = [human(row["bytes"])]
        for name, raw, ours in PAIRS:
            cost_us, ratio = (s[ours] - s[raw]) * 1e6, row["paired_ratio"][ours]
            cells += [f"{s[raw] * 1e6:.1f} us {bw(s[raw]):.0f} MiB/s", f"{s[ours] * 1e6:.1f} us {bw(s[ours]):.0f} MiB/s",
                      f"{ratio:.3f}" if row["bytes"] >= 2**20 else f"{cost_us:+.1f} us"]
            if row["bytes"] == 8:
                verdict[f"{ours} latency cost at 8 B, median of reps (us)"] = round(cost_us, 2)
            if row["bytes"] >= 2**20:
                key = f"{ours} worst bandwidth ratio at >= 1 MiB, paired median"
                verdict[key] = round(min(verdict.get(key, 9e9), ratio), 4)
        table.add_row(*cells)
    console.print(table)
    return verdict


def report(results: list[dict]) -> dict:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=220)
    verdict: dict = {}
    for res in results:
        if res["kind"] == "allreduce":
            verdict.update(_allreduce_table(console, res))
    for res in results:
        if res["kind"] == "overhead":
            s = res["seconds"]
            over = Table(title="per-call software cost at 8 B on 1 rank (best of reps; no peer wait)")
            for col in ("implementation", "us per call", "cost vs raw (us)"):
                over.add_column(col, justify="right")
            for name, sec in s.items():
                if name.endswith(" new"):
                    continue
                raw = s["raw mpi4py"] if "mpi" in name else s["raw torch gloo"]
                over.add_row(name, f"{sec * 1e6:.2f}", "" if name.startswith("raw") else f"{(sec - raw) * 1e6:+.2f}")
                if not name.startswith("raw"):
                    verdict[f"{name} latency cost at 8 B, 1-rank call path (us)"] = round((sec - raw) * 1e6, 2)
            console.print(over)
    boot = Table(title="bootstrap: deeprc.comm.init() (slowest rank), launcher wall time")
    for col in ("backend", "ranks", "init s", "import s (deeprc.comm, torch)", "mpiexec wall s"):
        boot.add_column(col, justify="right")
    for res in results:
        if res["kind"] == "bootstrap":
            boot.add_row(res["backend"], str(res["ranks"]), f"{res['init_s']:.3f}", f"{res['import_s']:.3f}",
                         f"{res['launch_wall_s']:.1f}")
            verdict[f"bootstrap {res['backend']} {res['ranks']} ranks (s)"] = round(res["init_s"], 3)
    console.print(boot)
    targets = Table(title="targets")
    for col in ("metric", "value", "target", "met"):
        targets.add_column(col)
    for key, value in verdict.items():
        if "latency" in key:
            targets.add_row(key, f"{value:+.2f} us", "<= 20 us", "yes" if value <= 20 else "NO")
        elif "ratio" in key:
            targets.add_row(key, f"{value:.3f} ({(1 - value) * 100:+.1f} % cost)", ">= 0.95", "yes" if value >= 0.95 else "NO")
    console.print(targets)
    return verdict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--max-mib", type=float, default=64)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--bootstrap-ranks", default="2,4")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--rank-mode", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--what", default="allreduce", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.rank_mode:
        if a.what == "allreduce":
            rank_bench(int(a.max_mib * 2**20), a.reps)
        elif a.what == "overhead":
            rank_overhead(a.reps)
        else:
            rank_bootstrap(a.what)
        return
    from rich.console import Console

    console = Console(stderr=True)
    results = []
    with console.status(f"allreduce sweep on {a.ranks} ranks..."):
        results += launch(a.ranks, ["--what", "allreduce", "--max-mib", str(a.max_mib), "--reps", str(a.reps)])
    with console.status("per-call overhead on one rank..."):
        results += launch(1, ["--what", "overhead", "--reps", str(a.reps)])
    for n in [int(x) for x in a.bootstrap_ranks.split(",") if x]:
        for backend in ("mpi", "gloo"):
            with console.status(f"bootstrap {backend} on {n} ranks..."):
                results += launch(n, ["--what", backend])
    verdict = report(results)
    if a.json:
        a.json.write_text(json.dumps({"results": results, "verdict": verdict}, indent=2))


if __name__ == "__main__":
    main()
