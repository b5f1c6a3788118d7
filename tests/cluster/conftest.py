"""Cross-node tests on the emulated multi-node Slurm (tests/infra/cluster.sh, the `cluster` fixture).

Every test here asserts where its ranks ran: node1 AND node2 must both appear.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "data"):  # rank programs, the DTable cases and their runner
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.cluster)
