"""The CLI shell: every command resolves, and errors are one paragraph with exit status 2."""

from __future__ import annotations

import subprocess
import sys

from deeprc.cli import COMMANDS
from deeprc.errors import config_error


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deeprc.cli", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_every_command() -> None:
    proc = cli("--help")
    assert proc.returncode == 0
    for name in COMMANDS:
        assert name in proc.stdout


def test_every_command_has_help() -> None:
    for name in COMMANDS:
        proc = cli(name, "--help")
        assert proc.returncode == 0, f"{name}: {proc.stderr}"


def test_config_error_shape() -> None:
    err = config_error("site-configs/x.yaml", "partitions.gpu.gpus_per_node", "must be an integer, got 'four'",
                       "write a whole number such as 4")
    assert str(err) == ("site-configs/x.yaml: field 'partitions.gpu.gpus_per_node': must be an integer, "
                        "got 'four'. Fix: write a whole number such as 4.")
    assert err.exit_code == 2


def test_unknown_command_fails() -> None:
    proc = cli("no-such-command")
    assert proc.returncode != 0
