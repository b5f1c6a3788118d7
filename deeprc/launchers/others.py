"""IBM `jsrun`, Cray `aprun` and `flux run`."""

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


@register_launcher("ibrun")
class Ibrun(Launcher):
    """TACC's `ibrun` (Frontera, Stampede3): the allocation's ranks, or `-n N -o 0` for fewer."""
    rp_launch_method = "IBRUN"

    def __init__(self) -> None:
        super().__init__(name="ibrun", program="ibrun")

    def prefix(self, ranks: int, opts: Mapping[str, object]) -> list[str]:
        return ["ibrun", "-n", str(ranks), "-o", "0"]
