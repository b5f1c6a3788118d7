"""The single entry point of a stage, the same under both runners and inside images.

    python -m deeprc.pipeline.entry --run-dir RUN --stage NAME

builds the StageContext (comm = deeprc.comm.init()), calls the stage function on every rank
and has rank 0 write ``stages/NAME/_result.json`` (metrics and the code's own start/end
times). Warm raptor workers call :func:`execute_stage` directly with their MPI communicator.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from deeprc.errors import ERROR_MARK, DeepRCError
from deeprc.pipeline import taskenv
from deeprc.pipeline.runfolder import RESULT, _write_json
from deeprc.pipeline.spec import Pipeline


def make_comm(backend: str = "auto", mpi_comm: Any = None) -> Any:
    """The stage's communicator: wrap the injected MPI communicator, or bootstrap from the launcher."""
    import deeprc.comm as dc

    return dc.from_mpi(mpi_comm) if mpi_comm is not None else dc.init(backend=backend)


def _set_threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    torch = sys.modules.get("torch")
    if torch is not None:
        with contextlib.suppress(Exception):
            torch.set_num_threads(n)


def rank_place() -> list[Any]:
    """`[host, interpreter, inside a DeepRC image]` of this rank (DEEPRC_IMAGE is set by the image's recipe)."""
    return [socket.gethostname(), sys.executable, os.environ.get("DEEPRC_IMAGE") == "1"]


def execute_stage(run_dir: str | Path, stage_name: str, comm: Any = None, attempt: int = 1) -> dict:
    """Run one stage on this rank; returns rank 0's metrics. Raises on failure."""
    from deeprc.stage import StageContext, resolve

    run_dir = Path(run_dir)
    pipe = Pipeline.from_run_yaml(run_dir / "spec.yaml")
    stage = pipe.stage(stage_name)
    if comm is None:
        comm = make_comm(stage.backend)
    _set_threads(stage.cores_per_rank)
    outdir = run_dir / "stages" / stage.name
    outdir.mkdir(parents=True, exist_ok=True)
    inputs = {d: run_dir / "stages" / d for d in stage.depends_on}
    log = logging.getLogger(f"deeprc.stage.{stage.name}")
    ctx = StageContext(name=stage.name, comm=comm, params=dict(stage.params), inputs=inputs, outdir=outdir,
                       run_dir=run_dir, profile=pipe.profile, seed=int(stage.params.get("seed", 0)), log=log)
    fn = resolve(stage.function)
    started = time.time()
    if comm.rank == 0:  # the task's "started" event is when the stage code begins
        from deeprc.pipeline.runfolder import RunFolder

        task = os.environ.get("RP_TASK_ID") or os.environ.get("DEEPRC_TASK") or "-"
        RunFolder(run_dir).event(stage.name, task, "started", started, attempt=attempt)
    metrics = fn(ctx) or {}
    finished = time.time()
    where = comm.allgather(rank_place())  # where each rank ran (rank order)
    if comm.rank == 0:
        _write_json(outdir / RESULT, {"metrics": metrics, "started": started, "finished": finished,
                                      "ranks": comm.size, "hosts": [w[0] for w in where],
                                      "pythons": [w[1] for w in where], "in_image": [w[2] for w in where],
                                      "attempt": attempt, "launcher": getattr(comm, "launcher", "")})
    return metrics


def report_failure(exc: BaseException) -> None:
    """The traceback for the log, then DeepRC's own one-paragraph message on a marked line (the CLI
    prints that line when the stage fails: deeprc.pipeline.runfolder.last_error)."""
    traceback.print_exc()
    if isinstance(exc, DeepRCError):
        print(ERROR_MARK + " ".join(str(exc).split()), flush=True)


def _log_handler(run_dir: Path, stage: str, rank: int) -> logging.Handler:
    h = logging.FileHandler(run_dir / "logs" / f"{stage}.log")
    h.setFormatter(logging.Formatter(f"%(asctime)s [rank {rank}] %(name)s %(levelname)s: %(message)s"))
    return h


def run_in_worker(task: str, comm: Any = None) -> dict:
    """Raptor function task body: `task` is :func:`deeprc.pipeline.taskenv.pack`'s blob, `comm` the task's
    MPI sub-communicator (None on 1 rank). The stage's environment is set for this call only."""
    spec = taskenv.unpack(task)
    old_env = taskenv.apply(spec["env"])
    try:
        run_dir_p, stage = Path(spec["env"]["DEEPRC_RUN_DIR"]), spec["env"]["DEEPRC_STAGE"]
        attempt = int(spec["env"]["DEEPRC_ATTEMPT"])
        if comm is None:  # one-rank tasks get no sub-communicator: use this rank alone
            from mpi4py import MPI

            comm = MPI.COMM_SELF
        c = make_comm(mpi_comm=comm)
        handler = _log_handler(run_dir_p, stage, c.rank)
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            with open(run_dir_p / "logs" / f"{stage}.log", "a", buffering=1) as out, \
                    contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                print(f"--- attempt {attempt}: rank {c.rank}/{c.size} on a warm raptor worker on {socket.gethostname()} (pid {os.getpid()})")
                try:
                    return execute_stage(run_dir_p, stage, c, attempt)
                except BaseException as exc:
                    report_failure(exc)
                    raise
        finally:
            root.removeHandler(handler)
            handler.close()
    finally:
        taskenv.restore(old_env)


def probe_worker(comm: Any = None) -> list[list[Any]]:
    """Raptor function task that proves a warm worker answers on all its ranks: `[host, python, in image, pid]`
    per rank, gathered over the task's MPI sub-communicator (so a worker whose ranks are not one MPI world fails it)."""
    me = [*rank_place(), os.getpid()]
    return comm.allgather(me) if comm is not None else [me]


def _redirect(log: str) -> None:
    """Append this process's stdout and stderr to `log` (the stage's log)."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m deeprc.pipeline.entry", description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir")
    ap.add_argument("--stage")
    ap.add_argument("--attempt", type=int, default=int(os.environ.get("DEEPRC_ATTEMPT") or 1),
                    help="default: $DEEPRC_ATTEMPT (set by the runner for every attempt), else 1")
    ap.add_argument("--log", help="append stdout/stderr to this file")
    ap.add_argument("--exec", dest="exec_argv", nargs=argparse.REMAINDER,
                    help="run this command (after --log) instead of a stage function")
    ap.add_argument("--task", help="a pilot task's packed environment, command and log (deeprc.pipeline.taskenv)")
    args = ap.parse_args(argv)
    spec = taskenv.decode(args.task) if args.task else {}
    if spec:
        args.log, args.exec_argv = spec.get("log"), spec.get("argv")
    if args.log:
        _redirect(args.log)
    if spec:
        try:
            os.environ.update({**spec["env"], **(taskenv.fetch(spec["key"]) if spec.get("key") else {})})
        except DeepRCError as exc:
            report_failure(exc)
            return 1
    if args.exec_argv:
        os.execvp(args.exec_argv[0], args.exec_argv)
    if not (args.run_dir and args.stage):
        ap.error("--run-dir and --stage are required")
    run_dir = Path(args.run_dir)
    pipe = Pipeline.from_run_yaml(run_dir / "spec.yaml")
    stage = pipe.stage(args.stage)
    if stage.framework == "tensorflow":
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    comm = make_comm(stage.backend)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s [rank {comm.rank}] %(name)s %(levelname)s: %(message)s")
    print(f"--- attempt {args.attempt}: rank {comm.rank}/{comm.size} in a fresh process on {socket.gethostname()} (pid {os.getpid()})", flush=True)
    try:
        execute_stage(run_dir, args.stage, comm, args.attempt)
    except BaseException as exc:
        report_failure(exc)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)  # do not hang in MPI finalisation when other ranks failed too
    return 0


if __name__ == "__main__":
    sys.exit(main())
