"""TACC's `ibrun`."""

from __future__ import annotations

from typing import Mapping

from deeprc.launchers.base import Launcher, register_launcher


@register_launcher("ibrun")
class Ibrun(Launcher):
    """TACC's `ibrun` (Frontera, Stampede3): the allocation's ranks, or `-n N -o 0` for fewer."""
    rp_launch_method = "IBRUN"

    def __init__(self) -> None:
        super().__init__(name="ibrun", program="ibrun")

    def prefix(self, ranks: int, opts: Mapping[str, object]) -> list[str]:
        return ["ibrun", "-n", str(ranks), "-o", "0"]
