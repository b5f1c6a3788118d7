"""`flux run` (Flux framework)."""

from __future__ import annotations

from typing import Mapping

from deeprc.launchers.base import Launcher, _int, register_launcher


@register_launcher("flux")
class FluxRun(Launcher):
    rp_launch_method = "FLUX"

    def __init__(self) -> None:
        super().__init__(name="flux", program="flux")

    def prefix(self, ranks: int, opts: Mapping[str, object]) -> list[str]:
        out = ["flux", "run", "-n", str(ranks)]
        if n := _int(opts, "nodes"):
            out += ["-N", str(n)]
        if c := _int(opts, "cpus_per_rank"):
            out += ["-c", str(c)]
        if g := _int(opts, "gpus_per_rank"):
            out += ["-g", str(g)]
        return out
