"""deeprc.comm across the emulated cluster's nodes: MPI and Gloo collectives, rendezvous where the
node's name resolves to 127.0.1.1, TensorFlow multi-worker and Lightning DDP training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cluster_helpers import HERE, PY, assert_both_nodes, explain, rank_hosts, reports, srun

PROGRAMS = HERE.parent / "comm" / "programs"


def check_collectives(cluster: dict, proc, ranks: int, backend: str) -> dict[int, dict]:  # noqa: ANN001
    """Every rank's report agrees with the numbers computed here, and the ranks sat on both nodes."""
    assert proc.returncode == 0, explain(proc)
    hosts, got = rank_hosts(proc), reports(proc)
    assert sorted(got) == list(range(ranks)), explain(proc)
    assert_both_nodes(cluster, hosts, ranks)
    total = sum(range(1, ranks + 1))
    for r, rep in got.items():
        assert rep["backend"] == backend and rep["size"] == ranks
        assert rep["host"] == hosts[r]
        assert rep["num_nodes"] == len(cluster["nodes"]), rep
        assert rep["local_size"] == ranks // len(cluster["nodes"]), rep
        assert rep["allreduce"] == [float(i * total) for i in range(5)]
        assert rep["max"] == ranks - 1
        assert rep["allgather"] == [hosts[i] for i in range(ranks)]  # the hosts, in rank order
        assert rep["bcast"] == {"from": 0}
        assert rep["alltoallv"] == [f"{j}->{r};" * (r + 1) for j in range(ranks)]
    return got


@pytest.mark.parametrize("backend,mpi", [("mpi", "pmix"), ("gloo", "pmix"), ("gloo", "none")],
                         ids=["mpi", "gloo-via-mpi", "gloo-via-slurm-vars"])
def test_collectives_across_nodes(cluster: dict, backend: str, mpi: str) -> None:
    """4 ranks, 2 per node: MPI under srun's PMIx; Gloo bootstrapped through MPI, or from SLURM_* alone."""
    proc = srun(cluster, [PY, str(HERE / "comm_report.py"), backend], ntasks=4, mpi=mpi)
    check_collectives(cluster, proc, 4, backend)


def debian_hosts_files(cluster: dict, folder: Path) -> Path:
    """One /etc/hosts per node as Debian writes it: the node's own name on 127.0.1.1."""
    shared = Path(cluster["conf"]).with_name("hosts").read_text().splitlines()
    for node in cluster["nodes"]:
        others = [line for line in shared if line.split()[1:2] != [node] and not line.startswith(("127.", "::1"))]
        (folder / node).write_text("\n".join(["127.0.0.1 localhost", f"127.0.1.1 {node}", *others]) + "\n")
    return folder


@pytest.mark.parametrize("mpi", ["pmix", "none"], ids=["via-mpi", "via-slurm-vars"])
def test_gloo_meets_when_hostname_is_loopback(cluster: dict, tmp_path: Path, mpi: str) -> None:
    """Each node's name resolves to 127.0.1.1 on that node and no interface is configured: ranks
    on two nodes still meet, because the address and Gloo's interface come from the route to rank 0."""
    hosts_dir = debian_hosts_files(cluster, tmp_path)
    wrapper = ["unshare", "--mount", "sh", "-c", f'mount --bind "{hosts_dir}/$(hostname)" /etc/hosts && exec "$@"', "hosts"]
    proc = srun(cluster, [PY, str(HERE / "comm_report.py"), "gloo", "30"], ntasks=2, mpi=mpi, wrapper=wrapper,
                timeout=120)
    got = check_collectives(cluster, proc, 2, "gloo")
    assert all(rep["resolves"] == "127.0.1.1" for rep in got.values()), got  # the trap was really set
    assert {rep["gloo_socket_ifname"] for rep in got.values()} == {"eth0"}, got


@pytest.mark.slow
def test_tf_multiworker_across_nodes(cluster: dict) -> None:
    """MultiWorkerMirroredStrategy with one worker per node: same loss on both."""
    proc = srun(cluster, [PY, str(PROGRAMS / "tf_fit.py"), "mpi"], ntasks=2, timeout=300)
    assert proc.returncode == 0, explain(proc)
    assert_both_nodes(cluster, rank_hosts(proc), 2)
    found = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"rank"')]
    assert sorted(rep["rank"] for rep in found) == [0, 1], explain(proc)
    workers = found[0]["workers"]
    assert sorted(w.rsplit(":", 1)[0] for w in workers) == sorted(cluster["nodes"]), workers  # TF_CONFIG names both
    losses = found[0]["losses"]
    assert len(losses) == 2 and losses[0] == losses[1] and losses[0] > 0


@pytest.mark.slow
def test_ddp_and_lightning_across_nodes(cluster: dict) -> None:
    """A DDP step and a Lightning DDP fit with one rank per node leave identical weights."""
    proc = srun(cluster, [PY, str(PROGRAMS / "ddp_step.py"), "mpi"], ntasks=2, timeout=300)
    assert proc.returncode == 0, explain(proc)
    assert_both_nodes(cluster, rank_hosts(proc), 2)
    for rank in (0, 1):
        assert f"rank {rank}: DDP weights identical on 2 ranks" in proc.stdout, explain(proc)
        assert f"rank {rank}: Lightning world 2, weights identical" in proc.stdout, explain(proc)
