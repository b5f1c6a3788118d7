"""tests/infra/cluster.sh itself: re-entrant, and each node has its own identity and /tmp."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

from cluster_helpers import REPO

SCRIPT = REPO / "tests" / "infra" / "cluster.sh"


def in_node(node: str, *argv: str) -> str:
    proc = subprocess.run(["bash", str(SCRIPT), "exec", node, *argv], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_second_start_returns_at_once(cluster: dict) -> None:
    """With its output captured: the daemons it started hold neither its lock nor its stdout."""
    t0 = time.time()
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["CLUSTER_READY", cluster["conf"], *cluster["nodes"]]
    assert time.time() - t0 < 15


def test_nodes_have_their_own_identity_and_tmp(cluster: dict, tmp_path: Path) -> None:
    marker = f"deeprc-{uuid.uuid4().hex}"
    first, second = cluster["nodes"][:2]
    assert in_node(first, "hostname").strip() == first
    assert "eth0" in in_node(first, "ip", "-o", "-4", "addr")
    assert "nameserver" not in in_node(first, "cat", "/etc/resolv.conf")
    assert in_node(first, "getent", "hosts", second).split()[1] == second  # the cluster's hosts file
    in_node(first, "touch", f"/tmp/{marker}")
    try:
        assert not os.path.exists(f"/tmp/{marker}")  # private /tmp: not on the host ...
        assert in_node(second, "ls", "/tmp").split().count(marker) == 0  # ... nor on the other node
    finally:
        in_node(first, "rm", "-f", f"/tmp/{marker}")
    (tmp_path / marker).write_text("shared")  # pytest's folders are shared with every node
    assert in_node(second, "cat", str(tmp_path / marker)) == "shared"
