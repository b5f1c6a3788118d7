"""Slurm's `srun`."""

from __future__ import annotations

from typing import Mapping

from deeprc.launchers.base import Launcher, _int, register_launcher


@register_launcher("srun")
class Srun(Launcher):
    rp_launch_method = "SRUN"

    def __init__(self) -> None:
        super().__init__(name="srun", program="srun")

    def prefix(self, ranks: int, opts: Mapping[str, object]) -> list[str]:
        out = ["srun", f"--ntasks={ranks}"]
        if n := _int(opts, "nodes"):
            out.append(f"--nodes={n}")
        if p := _int(opts, "ranks_per_node"):
            out.append(f"--ntasks-per-node={p}")
        if c := _int(opts, "cpus_per_rank"):
            out.append(f"--cpus-per-task={c}")
        if g := _int(opts, "gpus_per_rank"):
            out.append(f"--gpus-per-task={g}")
            if opts.get("gpu_bind", True):
                out.append("--gpu-bind=closest")
        pmi = opts.get("pmi")
        if pmi:
            out.append(f"--mpi={pmi}")
        return out
