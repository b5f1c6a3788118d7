"""Cray ALPS `aprun`."""

from __future__ import annotations

from typing import Mapping

from deeprc.launchers.base import Launcher, _int, register_launcher


@register_launcher("aprun")
class Aprun(Launcher):
    rp_launch_method = "APRUN"

    def __init__(self) -> None:
        super().__init__(name="aprun", program="aprun")

    def prefix(self, ranks: int, opts: Mapping[str, object]) -> list[str]:
        out = ["aprun", "-n", str(ranks)]
        if p := _int(opts, "ranks_per_node"):
            out += ["-N", str(p)]
        if c := _int(opts, "cpus_per_rank"):
            out += ["-d", str(c)]
        return out
