"""Executed by every MPI rank: runs many serialised DTable cases in one launch, gathers results.

usage: mpiexec -n R python mpi_runner.py CASES.pkl RESULTS.pkl

Each case holds its input tables as Arrow IPC bytes plus a per-row rank assignment; rank r keeps
the rows whose assignment modulo R is r (so partitions can be empty or skewed). Rank 0 writes
{case_id: {"parts": [IPC bytes per rank], "value": ..., "error": str | None}} and, under "hosts",
every rank's host name.
"""

from __future__ import annotations

import os
import pickle
import socket
import sys

os.environ.setdefault("POLARS_MAX_THREADS", "1")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

pa.set_cpu_count(1)
pa.set_io_thread_count(1)

from deeprc.comm import init  # noqa: E402
from deeprc.data import DTable  # noqa: E402
from deeprc.data import timeseries as ts  # noqa: E402
from deeprc.data.ipc import from_bytes, to_bytes  # noqa: E402


def partition(data: bytes, assign: list[int], comm) -> pa.Table:
    table = from_bytes(data)
    mask = (np.asarray(assign, dtype=np.int64) % comm.size) == comm.rank
    return table.filter(pa.array(mask, pa.bool_())) if table.num_rows else table


def run_case(case: dict, comm) -> tuple[DTable | None, object]:
    """Execute one case; returns (result table or None, extra value)."""
    if case["op"].startswith("io_"):
        return run_io_case(case, comm)
    tables = [DTable.from_arrow(partition(d, a, comm), comm, source=f"input{i}")
              for i, (d, a) in enumerate(zip(case["tables"], case["assign"]))]
    t, p = tables[0], case["params"]
    op = case["op"]
    if op == "shuffle":
        return t.shuffle(p["keys"]), None
    if op == "join":
        return t.join(tables[1], on=p["on"], how=p["how"]), None
    if op == "sort":
        return t.sort(p["by"], p["ascending"]), None
    if op == "groupby":
        return t.groupby(p["keys"]).agg(p["spec"]), None
    if op == "distinct":
        return t.distinct(p["cols"]), None
    if op == "filter":
        return t.filter(pc.field(p["col"]) > p["threshold"]), None
    if op == "select":
        return t.select(p["cols"]), None
    if op == "with_column":
        return t.with_column("w", pc.field(p["col"]) * 2 + 1), None
    if op == "concat":
        return DTable.concat(tables), None
    if op == "num_rows":
        return None, t.num_rows
    if op == "rebalance":
        return t.rebalance(), None
    if op == "lags":
        return ts.add_lags(t, p["id"], p["time"], p["cols"], p["lags"]), None
    if op == "rolling":
        return ts.add_rolling(t, p["id"], p["time"], p["cols"], p["windows"], p["stats"]), None
    if op == "fill":
        return ts.fill_missing(t, p["cols"], p["strategy"], id_col=p["id"], time_col=p["time"]), None
    if op == "normalize":
        out, stats = ts.normalize(t, p["cols"], method=p["method"])
        return out, stats
    raise ValueError(f"unknown op {op}")


def run_io_case(case: dict, comm) -> tuple[DTable | None, object]:
    """Cases on files the test wrote: reading shares, schema checks, writing parts, error messages."""
    p, op = case["params"], case["op"]
    read = DTable.read_csv if p.get("format") == "csv" else DTable.read_parquet
    if op == "io_read":
        return read(p["paths"], comm), None
    t = read(p["paths"], comm)
    if op == "io_write":
        out = f"{p['out']}-{comm.size}-{os.environ.get('DEEPRC_DATA_KERNEL', 'auto')}"
        t.write_parquet(out)
        return DTable.read_parquet(out, comm), t.local_rows
    if op == "io_join_missing_key":
        return t.join(t, on=p["on"]), None
    if op == "io_agg_text":
        return t.groupby(p["keys"]).agg(p["spec"]), None
    raise ValueError(op)


def main() -> None:
    cases_path, out_path = sys.argv[1], sys.argv[2]
    comm = init()
    with open(cases_path, "rb") as fh:
        cases = pickle.load(fh)
    results: dict = {"hosts": comm.allgather(socket.gethostname())}  # where each rank ran
    for case in cases:
        try:
            table, value = run_case(case, comm)
            parts = table.gather_partitions() if table is not None else None
            error = None
        except Exception as exc:  # noqa: BLE001 - reported to the test, which decides
            parts, value, error = None, None, f"{type(exc).__name__}: {exc}"
        if comm.rank == 0:
            results[case["id"]] = {"parts": [to_bytes(x) for x in parts] if parts else None,
                                   "value": value, "error": error}
    if comm.rank == 0:
        with open(out_path, "wb") as fh:
            pickle.dump(results, fh)
    comm.barrier()


if __name__ == "__main__":
    main()
