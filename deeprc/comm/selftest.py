"""The rank program of ``deeprc-deploy comm test``: every collective against a numpy reference.

    python -m deeprc.comm.selftest --backend gloo [--timeout 30]

Each rank derives every rank's input from a seed, so it can compute the exact expected
result alone. Rank 0 gathers the verdicts, prints a table and every rank exits 1 on any
mismatch. Test hooks: ``DEEPRC_SELFTEST_CORRUPT=<check>`` makes rank 0 expect a wrong value
for that check; ``DEEPRC_SELFTEST_KILL_RANK=<r>`` makes rank r die before the first collective.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Callable

import numpy as np

CORRUPT_VAR = "DEEPRC_SELFTEST_CORRUPT"
KILL_VAR = "DEEPRC_SELFTEST_KILL_RANK"
LINGER_S = 3.0  # how long a rank that lost a peer waits before it exits (so every survivor's error is seen)
N = 1000


def _data(rank: int, dtype: str) -> np.ndarray:
    rng = np.random.default_rng(1000 + rank)
    if dtype == "int64":
        return rng.integers(-1000, 1000, N, dtype=np.int64)
    return rng.standard_normal(N).astype(dtype)


_REDUCE = {"sum": np.sum, "min": np.min, "max": np.max, "mean": np.mean}


def _payload(src: int, dst: int) -> bytes:
    return bytes((src * 31 + dst * 7 + i) % 256 for i in range(3 * (src + dst) + src % 2))


def checks(comm: Any) -> list[tuple[str, Callable[[], tuple[Any, Any]]]]:
    """(name, fn) pairs; fn runs the collective and returns (got, expected)."""
    r, n = comm.rank, comm.size
    out: list[tuple[str, Callable[[], tuple[Any, Any]]]] = []

    out.append(("barrier", lambda: (comm.barrier(), None)))
    out.append(("bcast", lambda: (comm.bcast({"root": r, "x": [1, 2.5]} if r == 0 else None), {"root": 0, "x": [1, 2.5]})))
    out.append(("gather", lambda: (comm.gather(r * r, root=0), [i * i for i in range(n)] if r == 0 else None)))
    out.append(("allgather", lambda: (comm.allgather(("rank", r)), [("rank", i) for i in range(n)])))

    def reduce_check(op: str, dtype: str, kind: str) -> Callable[[], tuple[Any, Any]]:
        def run() -> tuple[Any, Any]:
            mine = _data(r, dtype)
            expected = _REDUCE[op](np.stack([_data(i, dtype) for i in range(n)]), axis=0)
            if kind == "torch":
                import torch

                got = comm.allreduce(torch.from_numpy(mine.copy()), op=op)
                assert isinstance(got, torch.Tensor), f"got {type(got).__name__}, expected a torch.Tensor"
                return got.numpy(), expected
            got = comm.allreduce(mine, op=op)
            assert isinstance(got, np.ndarray), f"got {type(got).__name__}, expected a numpy array"
            return got, expected

        return run

    for kind, dtype in (("numpy", "float64"), ("numpy", "int64"), ("torch", "float32")):
        for op in ("sum", "min", "max", "mean"):
            out.append((f"allreduce {op} {kind} {dtype}", reduce_check(op, dtype, kind)))

    def into_check(kind: str) -> Callable[[], tuple[Any, Any]]:
        def run() -> tuple[Any, Any]:
            mine = _data(r, "float32")
            expected = np.stack([_data(i, "float32") for i in range(n)]).sum(axis=0)
            if kind == "torch":
                import torch

                t = torch.from_numpy(mine.copy())
                got = comm.allreduce(t, out=t)
                assert got is t, "out= did not return the out tensor"
                return t.numpy(), expected
            got = comm.allreduce(mine, out=mine)
            assert got is mine, "out= did not return the out array"
            return mine, expected

        return run

    out.append(("allreduce in-place sum numpy float32", into_check("numpy")))
    out.append(("allreduce in-place sum torch float32", into_check("torch")))
    out.append((
        "alltoallv",
        lambda: (comm.alltoallv([_payload(r, d) for d in range(n)]), [_payload(s, r) for s in range(n)]),
    ))

    def split_check() -> tuple[Any, Any]:
        sub = comm.split(r % 2, key=-r)
        members = sorted((i for i in range(n) if i % 2 == r % 2), key=lambda i: -i)
        got = (sub.rank, sub.size, int(sub.allreduce(np.array([r], dtype=np.int64))[0]), sub.allgather(r))
        sub.close()
        return got, (members.index(r), len(members), sum(members), members)

    out.append(("split", split_check))
    return out


def _same(got: Any, expected: Any) -> tuple[bool, float]:
    if isinstance(expected, np.ndarray):
        got = np.asarray(got)
        if got.shape != expected.shape:
            return False, float("inf")
        err = float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64)))) if got.size else 0.0
        tol = 1e-4 * max(1.0, float(np.max(np.abs(expected)))) if expected.dtype.kind == "f" else 0.0
        return err <= tol, err
    return got == expected, 0.0


def _corrupt(expected: Any) -> Any:
    if isinstance(expected, np.ndarray):
        return expected + 1
    if isinstance(expected, list):
        return expected[::-1] + [None]
    return ("corrupted", expected)


def run(comm: Any) -> int:
    """Run every check on every rank; rank 0 prints the table. Returns the exit status."""
    corrupt = os.environ.get(CORRUPT_VAR, "")
    rows = []
    for name, fn in checks(comm):
        t0 = time.perf_counter()
        try:
            got, expected = fn()
            if comm.rank == 0 and corrupt and (corrupt == "all" or corrupt == name or name.startswith(corrupt + " ")):
                expected = _corrupt(expected)
            ok, err = _same(got, expected)
            note = "" if ok else f"got {str(got)[:60]} expected {str(expected)[:60]}"
        except AssertionError as exc:
            ok, err, note = False, float("inf"), str(exc)
        rows.append((name, ok, err, (time.perf_counter() - t0) * 1e3, note))
    everyone = comm.gather(rows, root=0)
    status = 0
    if comm.rank == 0:
        status = _report(comm, everyone)
    return int(comm.bcast(status, root=0))


def _report(comm: Any, everyone: list[list[tuple]]) -> int:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"deeprc comm test: {comm.size} ranks, backend {comm.backend}, launcher {comm.launcher}")
    for col in ("check", "ranks ok", "max error", "ms (rank 0)", "result"):
        table.add_column(col)
    failed = 0
    for i, (name, _, _, ms, _) in enumerate(everyone[0]):
        oks = [rows[i][1] for rows in everyone]
        err = max(rows[i][2] for rows in everyone)
        notes = [f"rank {r}: {rows[i][4]}" for r, rows in enumerate(everyone) if not rows[i][1]]
        good = all(oks)
        failed += not good
        table.add_row(
            name, f"{sum(oks)}/{len(oks)}", f"{err:.2e}", f"{ms:.2f}",
            "[green]ok[/green]" if good else f"[red]FAIL[/red] {notes[0][:90]}",
        )
    console = Console(width=140, force_terminal=False)
    console.print(table)
    if failed:
        console.print(f"[red]FAILED[/red]: {failed} of {len(everyone[0])} checks disagree with the numpy reference")
        return 1
    console.print(f"[green]PASSED[/green]: {len(everyone[0])} checks on {comm.size} ranks")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deeprc.comm.selftest")
    parser.add_argument("--backend", default="auto", choices=["auto", "mpi", "gloo", "nccl"])
    parser.add_argument("--timeout", type=float, default=None)
    args = parser.parse_args(argv)
    from deeprc.comm import init
    from deeprc.errors import DeepRCError

    try:
        comm = init(args.backend, timeout=args.timeout)
        kill = os.environ.get(KILL_VAR)
        if kill not in (None, "") and int(kill) == comm.rank:
            print(f"selftest: rank {comm.rank} exits on purpose ({KILL_VAR}={kill})", file=sys.stderr, flush=True)
            os._exit(3)
        status = run(comm)
        comm.close()
        return status
    except DeepRCError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        # the other survivors reach their own deadline within moments: give them time to report before the
        # launcher sees this rank exit and stops the job; then leave without MPI_Finalize, which waits for
        # the dead rank forever
        time.sleep(LINGER_S)
        sys.stdout.flush()
        os._exit(exc.exit_code)


if __name__ == "__main__":
    sys.exit(main())
