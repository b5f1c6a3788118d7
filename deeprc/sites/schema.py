"""The site-config schema: one pydantic model per YAML section, unknown keys rejected."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from deeprc.sites.walltime import parse_walltime


def _registered(kind: str) -> Any:
    """A field validator: the value must name a registered plug-in (deeprc.schedulers/launchers/runtimes)."""
    def check(cls: Any, value: str) -> str:
        import importlib

        return getattr(importlib.import_module(f"deeprc.{kind}"), kind.upper()).check(value)
    return classmethod(check)

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _check_env(env: dict[str, str]) -> dict[str, str]:
    for key in env:
        if not _ENV_NAME.fullmatch(key):
            raise ValueError(f"{key!r} is not a valid environment variable name")
    return env


def _check_rp(rp: dict[str, Any]) -> dict[str, Any]:
    """Keys of `rp:` must be Radical Pilot resource-config keys (deeprc.rp.config.check_resource_keys)."""
    if not rp:
        return rp
    from deeprc.rp.config import check_resource_keys

    return check_resource_keys(rp)


class Partition(_Strict):
    """One partition (Slurm) or queue (PBS, LSF) and the nodes behind it."""

    description: str = ""
    nodes: int = Field(ge=1, le=1_000_000, description="nodes in the partition (the most one job may ask for)")
    cores_per_node: int = Field(ge=1, le=100_000)
    gpus_per_node: int = Field(default=0, ge=0, le=1024)
    gpu_model: str | None = None
    gpu_vendor: Literal["nvidia", "amd"] | None = None
    memory_gb: float | None = Field(default=None, gt=0, le=1e9)
    oversubscribe: bool = Field(default=False, description="ranks may outnumber cores (the test node)")
    max_walltime: str = "24:00:00"
    queue: str | None = Field(default=None, description="the scheduler's name for it when not the key ('' = no partition directive)")
    constraint: str | None = None
    qos: str | None = None
    directives: list[str] = Field(default_factory=list, description="extra scheduler options for jobs here, e.g. -l filesystems=home:eagle")

    @field_validator("max_walltime", mode="before")
    @classmethod
    def _walltime(cls, v: Any) -> str:
        parse_walltime(v)
        return str(v)

    @model_validator(mode="after")
    def _vendor(self) -> "Partition":
        if self.gpus_per_node and self.gpu_vendor is None:
            model = (self.gpu_model or "").lower()
            self.__dict__["gpu_vendor"] = "amd" if re.search(r"\b(amd|mi\d+)", model) else "nvidia"
        return self

    @property
    def max_walltime_s(self) -> int:
        return parse_walltime(self.max_walltime)


def is_image_file(image: str) -> bool:
    """`image` names a file or folder (an Apptainer .sif, a Charliecloud directory), not a registry reference."""
    return image.startswith(("/", "~", "$", ".")) or image.endswith(".sif")


class Container(_Strict):
    """How stages run inside the site's image."""

    runtime: str = Field(default="none", description="a registered container runtime (deeprc.runtimes)")
    image: str | None = None
    variant: str = Field(default="cpu", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                         description="the recipe variant `deeprc-deploy build --site` builds (containers/recipe.yaml: cpu, cuda)")
    gpu_flag: str | None = Field(default=None, description="GPU flag; default per runtime and GPU vendor")
    binds: list[str] = Field(default_factory=list)
    options: list[str] = Field(default_factory=list, description="extra arguments to the runtime's run/exec")
    _runtime = field_validator("runtime")(_registered("runtimes"))

    @model_validator(mode="after")
    def _image(self) -> "Container":
        if self.runtime != "none" and not self.image:
            raise ValueError(f"container runtime '{self.runtime}' needs an image (container.image)")
        return self


class MPI(_Strict):
    """The site's MPI and how it meets the image's MPI."""

    flavour: Literal["openmpi", "mpich", "cray-mpich", "intel-mpi", "mvapich2", "spectrum-mpi"] = "openmpi"
    pmi: Literal["pmix", "pmi2", "pmi1", "cray_shasta", "none"] | None = None
    model: Literal["hybrid", "bind"] = "hybrid"
    host_paths: list[str] = Field(default_factory=list, description="host MPI folders bound into the image (bind model)")
    env: dict[str, str] = Field(default_factory=dict)

    _env = field_validator("env")(classmethod(lambda cls, v: _check_env(v)))


class Network(_Strict):
    """Fabric settings for NCCL/RCCL, Gloo and UCX, plus provider variables (FI_PROVIDER, ...)."""

    nccl_socket_ifname: str | None = None
    gloo_socket_ifname: str | None = None
    ucx_tls: str | None = None
    ucx_net_devices: str | None = None
    env: dict[str, str] = Field(default_factory=dict)

    _env = field_validator("env")(classmethod(lambda cls, v: _check_env(v)))

    def variables(self) -> dict[str, str]:
        """Every environment variable these settings stand for."""
        out: dict[str, str] = {}
        if self.nccl_socket_ifname:
            out["NCCL_SOCKET_IFNAME"] = self.nccl_socket_ifname
        if self.gloo_socket_ifname:
            out["GLOO_SOCKET_IFNAME"] = self.gloo_socket_ifname
        if self.ucx_tls:
            out["UCX_TLS"] = self.ucx_tls
        if self.ucx_net_devices:
            out["UCX_NET_DEVICES"] = self.ucx_net_devices
        out.update(self.env)
        return out


class Filesystems(_Strict):
    """Where runs and images live; `$VAR` and `~` are expanded on the submitting host."""

    scratch: str | None = None
    image_cache: str | None = None
    runs: str | None = Field(default=None, description="parent folder of run folders (default: SCRATCH/deeprc-runs or ./runs)")


class Cloud(_Strict):
    """Cloud VM facts used by `deeprc-deploy bootstrap` (deeprc.cloud)."""

    provider: Literal["aws", "gcp", "azure"]
    region: str | None = None
    zone: str | None = None
    instance_type: str
    machine_image: str | None = None
    accelerator: str | None = None
    accelerator_count: int = Field(default=0, ge=0)
    efa: bool = False
    placement_group: str | None = None
    ssh_user: str | None = None
    disk_gb: int = Field(default=200, ge=10)
    options: dict[str, Any] = Field(default_factory=dict)


class Site(_Strict):
    """A site: scheduler, launcher, partitions, image and fabric; see site-configs/*.yaml."""

    name: str = ""
    description: str = ""
    hostnames: list[str] = Field(default_factory=list, description="fnmatch patterns for detect_site")
    scheduler: str = Field(default="local", description="a registered scheduler (deeprc.schedulers)")
    launcher: str = Field(default="mpiexec", description="a registered launcher (deeprc.launchers)")
    launcher_args: list[str] = Field(default_factory=list)
    gpu_binding: Literal["launcher", "local-rank", "none"] = "launcher"
    default_partition: str | None = None
    directives: list[str] = Field(default_factory=list, description="extra scheduler options for every job")
    partitions: dict[str, Partition] = Field(default_factory=dict)
    account: str | None = None
    module_reset: bool = False
    module_use: list[str] = Field(default_factory=list, description="folders for `module use` before loading")
    modules: list[str] = Field(default_factory=list)
    environment: dict[str, str] = Field(default_factory=dict)
    scheduler_env: dict[str, str] = Field(
        default_factory=dict,
        description="environment of the scheduler's commands (sbatch, scontrol, scancel) and of jobs, e.g. "
                    "SLURM_CONF for a Slurm other than the machine's default",
    )
    container: Container = Field(default_factory=Container)
    mpi: MPI = Field(default_factory=MPI)
    network: Network = Field(default_factory=Network)
    filesystems: Filesystems = Field(default_factory=Filesystems)
    deeprc_command: list[str] | None = Field(default=None, description="how a job starts deeprc-deploy (default: deeprc-deploy in an image, this Python outside)")
    rp: dict[str, Any] = Field(default_factory=dict, description="overrides merged into the generated Radical Pilot resource config")
    cloud: Cloud | None = None

    _env = field_validator("environment", "scheduler_env")(classmethod(lambda cls, v: _check_env(v)))
    _scheduler = field_validator("scheduler")(_registered("schedulers"))
    _launcher = field_validator("launcher")(_registered("launchers"))
    _rp = field_validator("rp")(classmethod(lambda cls, v: _check_rp(v)))

    def job_env(self) -> dict[str, str]:
        """Every variable a job and its ranks get: environment, scheduler_env, network, then MPI."""
        return {**self.environment, **self.scheduler_env, **self.network.variables(), **self.mpi.env}

    @model_validator(mode="after")
    def _partitions(self) -> "Site":
        if self.scheduler != "local" and not self.partitions:
            raise ValueError(f"scheduler '{self.scheduler}' needs at least one entry under 'partitions'")
        if self.default_partition is not None and self.default_partition not in self.partitions:
            raise ValueError(
                f"default_partition '{self.default_partition}' is not among partitions {sorted(self.partitions)}"
            )
        return self

    # ---- helpers used by the launcher and the RP resource config ----
    def partition(self, name: str | None = None) -> tuple[str, Partition]:
        """The named partition, else the default one, else the first; KeyError if unknown."""
        if name is None:
            name = self.default_partition or (next(iter(self.partitions)) if self.partitions else None)
        if name is None:
            return "local", _local_partition()
        return name, self.partitions[name]


def _local_partition() -> Partition:
    import os

    return Partition(nodes=1, cores_per_node=os.cpu_count() or 1, max_walltime="9999:00:00")
