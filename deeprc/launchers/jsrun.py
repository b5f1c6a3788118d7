"""IBM Spectrum LSF's `jsrun` (Summit-class machines)."""

from __future__ import annotations

from typing import Mapping

from deeprc.launchers.base import Launcher, _int, register_launcher


@register_launcher("jsrun")
class Jsrun(Launcher):
    """One resource set per rank: `jsrun -n N -a 1 -c C -g G`."""
    rp_launch_method = "JSRUN"

    def __init__(self) -> None:
        super().__init__(name="jsrun", program="jsrun")

    def prefix(self, ranks: int, opts: Mapping[str, object]) -> list[str]:
        out = ["jsrun", "-n", str(ranks), "-a", "1", "-c", str(_int(opts, "cpus_per_rank") or 1),
               "-g", str(_int(opts, "gpus_per_rank") or 0)]
        if opts.get("gpu_bind", True) and _int(opts, "gpus_per_rank"):
            out += ["-b", "packed:1"]
        return out
