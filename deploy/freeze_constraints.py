"""Write constraints.txt from the packages installed in this venv (`make constraints` runs it).

Two things make the pins satisfiable on any fresh machine with Python 3.10+ from public indexes:
torch is pinned by its public release (no +cpu/+cu128 label: the build is TORCH_VARIANT's, see
deploy/install_torch.py), and a pin whose release needs a newer Python than 3.10 carries a
`python_version` marker, so older Pythons take the newest release they can run.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.specifiers import SpecifierSet

OLDEST_PYTHON = "3.10"
SKIP = {"deeprc", "pip", "setuptools", "wheel"}
HEADER = """\
# Versions verified together on Debian 12 / Python 3.11 (make install uses this file).
# Regenerate: make constraints (deploy/freeze_constraints.py)
# torch is pinned by its public version; its build (+cpu, +cu128) is TORCH_VARIANT's (deploy/install_torch.py).
"""


def pin(dist: metadata.Distribution) -> str:
    name, version = dist.metadata["Name"], dist.version
    if name.lower().startswith("torch"):
        version = version.split("+")[0]
    line = f"{name}=={version}"
    needs = dist.metadata.get("Requires-Python")
    if needs and f"{OLDEST_PYTHON}.99" not in SpecifierSet(needs.replace(" ", "")):
        floor = re.search(r">=\s*(3\.\d+)", needs)
        line += f'; python_version >= "{floor.group(1) if floor else "3.11"}"'
    return line


def main() -> int:
    dists = {d.metadata["Name"].lower(): d for d in metadata.distributions() if d.metadata["Name"]}
    lines = sorted((pin(d) for n, d in dists.items() if n not in SKIP), key=str.lower)
    Path(sys.argv[1] if len(sys.argv) > 1 else "constraints.txt").write_text(HEADER + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
