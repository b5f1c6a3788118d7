"""The hooks folder: a standalone copy of :mod:`deeprc.rp.patches` (and the version gate) with a
``sitecustomize.py`` that installs it, for the processes RP starts.

The pilot puts the folder first on ``PYTHONPATH`` of RP's agent (``pre_bootstrap_0``), the client's
bridges and components, and the raptor workers' ranks (inside the site's image too, where DeepRC itself
may not be installed): Python imports ``sitecustomize`` at start-up, which installs the patches.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from deeprc.rp.patches.common import HOOKS_PACKAGE

HERE = Path(__file__).resolve().parent
SITECUSTOMIZE = f'''"""Start-up hook: DeepRC's Radical Pilot patches (deeprc/rp/patches, copied into {HOOKS_PACKAGE}/ next to
this file by deeprc.rp.hooks), installed in every Python process with this folder on PYTHONPATH."""

from {HOOKS_PACKAGE}.patches import install

install()
'''


def write_hooks(folder: Path) -> Path:
    """Write the hooks folder (``sitecustomize.py`` and the package it installs) into `folder`; return it."""
    package = folder / HOOKS_PACKAGE
    (package / "patches").mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text('"""A copy of deeprc.rp\'s patches and version gate (deeprc.rp.hooks)."""\n')
    shutil.copyfile(HERE / "versions.py", package / "versions.py")
    for source in sorted((HERE / "patches").glob("*.py")):
        shutil.copyfile(source, package / "patches" / source.name)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return folder
