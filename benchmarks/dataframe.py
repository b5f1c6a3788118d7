"""Join and sort of N rows per side: DeepRC's DTable on 1 and R MPI ranks next to single-process
DuckDB and polars on the same data. Prints seconds (median of --repeats), rows/s, peak memory,
ratios to DuckDB and the shuffle's share of the distributed time.

    python benchmarks/dataframe.py --rows 1000000 --ranks 2

Each engine runs in its own process (peak memory is per process; for DeepRC the sum over ranks).
Data: int64 keys uniform in [0, N) and one float64 payload per side, generated in fixed blocks
from a seed, so every engine and rank count sees the same rows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

BLOCK = 250_000
HERE = Path(__file__).resolve()


def blocks(rows: int) -> list[tuple[int, int]]:
    """(start, length) of every data block."""
    return [(s, min(BLOCK, rows - s)) for s in range(0, rows, BLOCK)]


def side(name: str, rows: int, rank: int = 0, size: int = 1, seed: int = 7) -> pa.Table:
    """This rank's blocks of one side (`left` or `right`): key (int64) and a float64 payload."""
    keys, vals = [], []
    for b, (_, n) in enumerate(blocks(rows)):
        if b % size != rank:
            continue
        rng = np.random.default_rng([seed, 0 if name == "left" else 1, b])
        keys.append(rng.integers(0, rows, n, dtype=np.int64))
        vals.append(rng.random(n))
    key = np.concatenate(keys) if keys else np.zeros(0, np.int64)
    val = np.concatenate(vals) if vals else np.zeros(0)
    return pa.table({"key": key, "a" if name == "left" else "b": val})


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        out = None
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


# --- workers (one process each) ------------------------------------------------------------

def worker_single(engine: str, rows: int, repeats: int) -> dict:
    left, right = side("left", rows), side("right", rows)
    result: dict = {"engine": engine, "ranks": 1}
    if engine == "duckdb":
        import duckdb

        con = duckdb.connect()
        con.register("l", left)
        con.register("r", right)
        result["join_s"], out = timed(lambda: con.sql("SELECT * FROM l JOIN r USING (key)").arrow().read_all(), repeats)
        result["join_rows"] = out.num_rows
        result["sort_s"], _ = timed(lambda: con.sql("SELECT * FROM l ORDER BY key").arrow().read_all(), repeats)
    else:
        import polars as pl

        lf, rf = pl.from_arrow(left), pl.from_arrow(right)
        result["join_s"], out = timed(lambda: lf.join(rf, on="key"), repeats)
        result["join_rows"] = out.height
        result["sort_s"], _ = timed(lambda: lf.sort("key"), repeats)
    result["peak_mb"] = peak_mb()
    return result


def worker_deeprc(rows: int, repeats: int) -> dict | None:
    from deeprc.comm import init
    from deeprc.data import DTable
    from deeprc.data import shuffle

    comm = init()
    threads = max(1, (os.cpu_count() or 1) // comm.size)
    pa.set_cpu_count(threads)
    left = DTable.from_arrow(side("left", rows, comm.rank, comm.size), comm)
    right = DTable.from_arrow(side("right", rows, comm.rank, comm.size), comm)
    result: dict = {"engine": "deeprc/" + os.environ.get("DEEPRC_DATA_KERNEL", "auto"), "ranks": comm.size}
    for op, fn in (("join", lambda: left.join(right, on="key")), ("sort", lambda: left.sort("key"))):
        runs = []
        out = None
        for _ in range(repeats):
            out = None
            comm.barrier()
            shuffle.reset_timings()
            start = time.perf_counter()
            out = fn()
            comm.barrier()
            elapsed = time.perf_counter() - start
            moved = shuffle.TIMINGS["partition_s"] + shuffle.TIMINGS["exchange_s"]
            slowest = float(np.asarray(comm.allreduce(np.array([moved]), op="max"))[0])
            runs.append((elapsed, slowest))
        runs.sort()
        result[f"{op}_s"], result[f"{op}_shuffle_s"] = runs[len(runs) // 2]   # the median run
        if op == "join":
            result["join_rows"] = int(comm.allreduce(np.array([out.local_rows], dtype=np.int64), op="sum")[0])
    result["peak_mb"] = float(np.asarray(comm.allreduce(np.array([peak_mb()]), op="sum"))[0])
    return result if comm.rank == 0 else None


# --- driver ----------------------------------------------------------------------------------

def run_worker(argv: list[str], env: dict | None = None) -> dict:
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"benchmark worker failed: {' '.join(argv)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per side")
    parser.add_argument("--ranks", type=int, default=2, help="largest MPI rank count (1 is always run too)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kernels", default="auto", help="DEEPRC_DATA_KERNEL values to run, comma-separated")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker == "deeprc":
        out = worker_deeprc(args.rows, args.repeats)
        if out is not None:
            print(json.dumps(out), flush=True)
        return
    if args.worker:
        print(json.dumps(worker_single(args.worker, args.rows, args.repeats)), flush=True)
        return

    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    me = [sys.executable, str(HERE), "--rows", str(args.rows), "--repeats", str(args.repeats)]
    results = []
    with console.status("") as status:
        for engine in ("duckdb", "polars"):
            status.update(f"{engine}: join and sort of {args.rows:,} rows per side")
            results.append(run_worker(me + ["--worker", engine]))
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        env.setdefault("POLARS_MAX_THREADS", "1")
        mpiexec = str(Path(sys.executable).parent / "mpiexec")
        for kernel in args.kernels.split(","):
            for ranks in sorted({1, args.ranks}):
                status.update(f"deeprc on {ranks} rank(s), {kernel} kernels")
                env_k = dict(env, DEEPRC_DATA_KERNEL=kernel, POLARS_MAX_THREADS=str(max(1, (os.cpu_count() or 1) // ranks)))
                results.append(run_worker([mpiexec, "-n", str(ranks), "--oversubscribe"] + me + ["--worker", "deeprc"], env_k))

    base = results[0]
    table = Table(title=f"join and sort, {args.rows:,} rows per side, {os.cpu_count()} cores (median of {args.repeats})")
    for col in ("engine", "ranks", "op", "seconds", "rows/s", "peak MB", "x DuckDB", "shuffle share"):
        table.add_column(col, justify="left" if col in ("engine", "op") else "right")
    for r in results:
        for op in ("join", "sort"):
            secs = r[f"{op}_s"]
            rows = 2 * args.rows if op == "join" else args.rows
            share = r.get(f"{op}_shuffle_s")
            table.add_row(r["engine"], str(r["ranks"]), op, f"{secs:.3f}", f"{rows / secs:,.0f}",
                          f"{r['peak_mb']:,.0f}", f"{secs / base[f'{op}_s']:.2f}",
                          f"{100 * share / secs:.0f}%" if share is not None and r["ranks"] > 1 else "-")
    console.print(table)
    rows_seen = {r["join_rows"] for r in results}
    console.print(f"join output rows: {sorted(rows_seen)} (must be one number: same data everywhere)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if len(rows_seen) != 1:
        raise SystemExit("engines disagree on the join's row count")


if __name__ == "__main__":
    main()
