"""Apptainer and SingularityCE: `apptainer exec --nv|--rocm --bind ... IMAGE argv`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

from deeprc.runtimes.base import Runtime, bind_model_env, expand, register_runtime

if TYPE_CHECKING:
    from deeprc.sites.schema import Site


@register_runtime("apptainer")
class Apptainer(Runtime):
    def __init__(self, program: str = "apptainer") -> None:
        super().__init__(name=program, program=program)

    def default_gpu_flags(self, vendor: str) -> list[str]:
        return ["--rocm"] if vendor == "amd" else ["--nv"]

    def exec_command(self, image: str | None, argv: Sequence[str], binds: Sequence[str] = (), gpus: bool = False,
                     site: Site | None = None, env: Mapping[str, str] | None = None) -> list[str]:
        out = [self.program, "exec"]
        if gpus:
            out += self.gpu_flags(site)
        for b in self.all_binds(site, binds):
            out += ["--bind", b]
        for k, v in bind_model_env(site).items():
            out += ["--env", f"{k}={v}"]
        out += self.options(site)
        return out + [expand(str(image)), *map(str, argv)]


@register_runtime("singularity")
class Singularity(Apptainer):
    def __init__(self) -> None:
        super().__init__(program="singularity")
