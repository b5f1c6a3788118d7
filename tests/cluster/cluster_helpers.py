"""Start rank programs across the emulated cluster's nodes with srun and read back where they ran."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PY = sys.executable
# every rank prints its rank and host before the program starts, so tests see where ranks really ran
_WHERE = 'echo "RANKHOST ${SLURM_PROCID} $(hostname)"; exec "$@"'


def srun(cluster: dict, argv: list[str], *, nodes: int = 2, ntasks: int = 2, mpi: str = "pmix",
         wrapper: list[str] | None = None, timeout: int = 240, env: dict | None = None,
         cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`srun -N nodes -n ntasks` of argv on the cluster (bounded by Slurm's --time and `timeout`)."""
    minutes = max(1, timeout // 60 + 1)
    cmd = ["srun", f"--nodes={nodes}", f"--ntasks={ntasks}", f"--mpi={mpi}", "--kill-on-bad-exit=1",
           f"--time={minutes}", "--partition", cluster["partition"], *(wrapper or []),
           "sh", "-c", _WHERE, "rank", *argv]
    run_env = {**cluster["env"], "PYTHONPATH": f"{REPO}:{HERE}", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def rank_hosts(proc: subprocess.CompletedProcess[str]) -> dict[int, str]:
    """{rank: host} from the RANKHOST lines of srun's output."""
    out = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RANKHOST "):
            _, rank, host = line.split()
            out[int(rank)] = host
    return out


def reports(proc: subprocess.CompletedProcess[str]) -> dict[int, dict]:
    """{rank: report} from the `REPORT {json}` lines the rank programs print."""
    found = [json.loads(line[len("REPORT "):]) for line in proc.stdout.splitlines() if line.startswith("REPORT ")]
    return {r["rank"]: r for r in found}


def explain(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"


def assert_both_nodes(cluster: dict, hosts: dict[int, str] | list[str], ranks: int) -> None:
    """Every rank reported a host, and the ranks sat on every node of the cluster."""
    names = list(hosts.values()) if isinstance(hosts, dict) else list(hosts)
    assert len(names) == ranks, f"{len(names)} of {ranks} ranks reported a host: {hosts}"
    assert set(names) == set(cluster["nodes"]), f"ranks ran on {sorted(set(names))}, not on every node {cluster['nodes']}"
