"""OCI runtimes: podman, docker, NERSC's podman-hpc and shifter."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

from deeprc.runtimes.base import Runtime, bind_model_env, expand, register_runtime

if TYPE_CHECKING:
    from deeprc.sites.schema import Site

# host variables every rank needs inside the image (rank ids, PMI wire-up, DeepRC's own)
PASS_PREFIXES = ("DEEPRC_", "OMPI_", "PMIX_", "PMI_", "PRTE_", "SLURM_", "PALS_", "CUDA_", "ROCR_", "HIP_", "NCCL_",
                 "GLOO_", "UCX_", "FI_", "TF_", "OMP_")


@register_runtime("podman")
class Podman(Runtime):
    """`podman run --rm --network host --ipc host -v X:X --env PREFIX* IMAGE argv`."""

    def __init__(self, program: str = "podman") -> None:
        super().__init__(name=program, program=program)

    def default_gpu_flags(self, vendor: str) -> list[str]:
        return ["--device", "amd.com/gpu=all" if vendor == "amd" else "nvidia.com/gpu=all"]

    def env_flags(self, env: Mapping[str, str] | None) -> list[str]:
        out: list[str] = []
        for p in PASS_PREFIXES:
            out += ["--env", f"{p}*"]
        for k in env or {}:
            out += ["--env", k]
        return out

    def exec_command(self, image: str | None, argv: Sequence[str], binds: Sequence[str] = (), gpus: bool = False,
                     site: Site | None = None, env: Mapping[str, str] | None = None) -> list[str]:
        out = [self.program, "run", "--rm", "--network", "host", "--ipc", "host"]
        if gpus:
            out += self.gpu_flags(site)
        for b in self.all_binds(site, binds):
            out += ["-v", b if ":" in b else f"{b}:{b}"]
        out += self.env_flags(env)
        for k, v in bind_model_env(site).items():
            out += ["--env", f"{k}={v}"]
        out += self.options(site)
        return out + [expand(str(image)), *map(str, argv)]


@register_runtime("docker")
class Docker(Podman):
    """Docker has no wildcard `--env`; the caller's variables and the rank ids are passed by name."""

    def __init__(self) -> None:
        super().__init__(program="docker")

    def default_gpu_flags(self, vendor: str) -> list[str]:
        return ["--device", "/dev/kfd", "--device", "/dev/dri"] if vendor == "amd" else ["--gpus", "all"]

    def env_flags(self, env: Mapping[str, str] | None) -> list[str]:
        names = ["OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "PMIX_RANK",
                 "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "CUDA_VISIBLE_DEVICES", *(env or {})]
        out: list[str] = []
        for k in names:
            out += ["--env", k]
        return out


@register_runtime("podman-hpc")
class PodmanHPC(Podman):
    """NERSC podman-hpc: `--gpu` and `--mpi` (Cray MPICH bind) modules, shared-run friendly."""

    def __init__(self) -> None:
        super().__init__(program="podman-hpc")

    def default_gpu_flags(self, vendor: str) -> list[str]:
        return ["--gpu"]

    def exec_command(self, image: str | None, argv: Sequence[str], binds: Sequence[str] = (), gpus: bool = False,
                     site: Site | None = None, env: Mapping[str, str] | None = None) -> list[str]:
        out = [self.program, "run", "--rm"]
        if gpus:
            out += self.gpu_flags(site)
        mpi = getattr(site, "mpi", None)
        if mpi is not None and mpi.model == "bind":
            out.append("--mpi" if mpi.flavour in ("cray-mpich", "mpich") else "--openmpi-pmix")
        for b in self.all_binds(site, [b for b in binds]):
            out += ["-v", b if ":" in b else f"{b}:{b}"]
        out += self.env_flags(env)
        out += self.options(site)
        return out + [expand(str(image)), *map(str, argv)]


@register_runtime("shifter")
class Shifter(Runtime):
    """NERSC shifter: `shifter --image=IMG --volume=a:a --module=gpu argv`."""

    def __init__(self) -> None:
        super().__init__(name="shifter", program="shifter")

    def default_gpu_flags(self, vendor: str) -> list[str]:
        return ["--module=gpu"]

    def exec_command(self, image: str | None, argv: Sequence[str], binds: Sequence[str] = (), gpus: bool = False,
                     site: Site | None = None, env: Mapping[str, str] | None = None) -> list[str]:
        out = ["shifter", f"--image={expand(str(image))}"]
        if gpus:
            out += self.gpu_flags(site)
        for b in self.all_binds(site, binds):
            out.append(f"--volume={b if ':' in b else f'{b}:{b}'}")
        out += self.options(site)
        return out + [*map(str, argv)]
