"""`mpiexec`/`mpirun` for Open MPI, MPICH (Hydra), Cray PALS and Intel MPI."""

from __future__ import annotations

from typing import Mapping

from deeprc.launchers.base import Launcher, _int, register_launcher


@register_launcher("mpiexec")
class Mpiexec(Launcher):
    rp_launch_method = "MPIEXEC"

    def __init__(self, program: str = "mpiexec") -> None:
        super().__init__(name=program, program=program)

    def prefix(self, ranks: int, opts: Mapping[str, object]) -> list[str]:
        flavour = str(opts.get("flavour") or "openmpi")
        ppn = _int(opts, "ranks_per_node")
        if flavour == "openmpi" and (_int(opts, "nodes") or 2) <= 1:
            ppn = None  # one node: Open MPI's ppr mapping would only refuse oversubscription
        cpus = _int(opts, "cpus_per_rank")
        out = [self.program, "-n", str(ranks)]
        if flavour == "openmpi":
            if ppn:
                out += ["--map-by", f"ppr:{ppn}:node" + (f":pe={cpus}" if cpus else "")]
            elif cpus:
                out += ["--map-by", f"slot:pe={cpus}"]
        elif flavour == "cray-mpich":  # Cray PALS (e.g. ALCF Polaris)
            if ppn:
                out += ["--ppn", str(ppn)]
            if cpus:
                out += ["--depth", str(cpus), "--cpu-bind", "depth"]
        else:  # MPICH Hydra, Intel MPI, MVAPICH2
            if ppn:
                out += ["-ppn", str(ppn)]
        return out


@register_launcher("mpirun")
class Mpirun(Mpiexec):
    rp_launch_method = "MPIRUN"

    def __init__(self) -> None:
        super().__init__(program="mpirun")
