"""What one bootstrap renders: the cloud site, the cluster's hosts, the install and the pipeline."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from deeprc import __version__
from deeprc.cloud.keys import KeyPair
from deeprc.errors import DeepRCError

if TYPE_CHECKING:
    from deeprc.sites.schema import Site

InstallMode = Literal["image", "venv", "none"]
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.:^,=-]{1,64}$")


@dataclass
class BootstrapPlan:
    """Everything the templates in deploy/cloud/ need; build it with :func:`make_plan`."""

    site: Site  # deeprc.sites.Site (a cloud site)
    site_yaml: str  # the site config written on every VM
    nodes: int
    hosts: list[str]
    pipeline: str | None
    pipeline_args: list[str]
    install: InstallMode
    source: str  # pip requirement, URL or path of DeepRC's source (install=venv)
    wheels: str  # a find-links folder on the VM ("" = none)
    offline: bool  # pip --no-index (only the wheels folder)
    no_deps: bool  # install DeepRC without its dependencies, then only `packages`
    packages: list[str]
    keys: KeyPair | None
    slots: int
    gpus: int
    nccl_ifname: str
    gloo_ifname: str
    fabric_env: dict[str, str] = field(default_factory=dict)
    peer_timeout: int = 600
    pipeline_text: str = ""  # a local pipeline file shipped inside the script (then `pipeline` is its name)

    @property
    def runtime(self) -> str:
        return self.site.container.runtime

    @property
    def image(self) -> str:
        return self.site.container.image or ""

    @property
    def efa(self) -> bool:
        return bool(self.site.cloud and self.site.cloud.efa)


def cloud_site(site: Site, where: str = "--site") -> Any:
    """`site` if it has a `cloud:` section, else a clear error."""
    if getattr(site, "cloud", None) is None:
        raise DeepRCError(
            f"{where} '{getattr(site, 'name', site)}': this site has no 'cloud' section, so it cannot be bootstrapped on cloud VMs. "
            "Fix: choose a cloud site (one whose YAML has `cloud: {provider: aws|gcp, instance_type: ...}`; "
            "see `deeprc-deploy sites list`) or add that section to your site file."
        )
    return site


def parse_hosts(text: str | None) -> list[str]:
    """`--hosts a,b,c` as a list; each entry must be an IP address or a DNS name."""
    if not text:
        return []
    hosts = [h.strip() for h in text.split(",") if h.strip()]
    for h in hosts:
        try:
            ipaddress.ip_address(h)
        except ValueError:
            if not _HOSTNAME.match(h):
                raise DeepRCError(
                    f"bootstrap: --hosts entry {h!r} is neither an IP address nor a host name. "
                    "Fix: pass the VMs' private addresses separated by commas, e.g. --hosts 10.0.1.11,10.0.1.12."
                ) from None
    if len(set(hosts)) != len(hosts):
        raise DeepRCError("bootstrap: --hosts lists the same address twice. Fix: give each VM's address once.")
    return hosts


def _gpus(site: Site) -> int:
    if site.cloud.accelerator_count:
        return int(site.cloud.accelerator_count)
    if site.partitions:
        return int(site.partition()[1].gpus_per_node)
    return 0


def _slots(site: Site, gpus: int) -> int:
    if gpus:
        return gpus
    if site.partitions:
        return int(site.partition()[1].cores_per_node)
    return 1


def _ifname(value: str | None, field_name: str) -> str:
    if value in (None, "", "auto"):
        return ""
    if not _IFNAME.match(value):
        raise DeepRCError(
            f"site field 'network.{field_name}': {value!r} is not an interface name or prefix list. "
            "Fix: give e.g. 'ens5', '^lo,docker' or 'auto' (bootstrap picks the interface that reaches the other VMs)."
        )
    return value


def site_yaml_for_vm(site: Site, hosts: list[str], hostfile: str, fabric: dict[str, str]) -> str:
    """The site config written on the VMs: the cloud site, launching with mpiexec over the hostfile."""
    data = site.model_dump(mode="json", exclude_defaults=True)
    data["scheduler"] = "local"
    data["launcher"] = "mpiexec"
    if hosts:
        args = list(data.get("launcher_args") or [])
        if "--hostfile" not in args:
            args += ["--hostfile", hostfile]
        # ranks on the other VMs get the interface and fabric settings of the first one
        for name in ["PATH", "NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME", "DEEPRC_SITES_PATH", *fabric]:
            if name not in args:
                args += ["-x", name]
        data["launcher_args"] = args
    return "# Written by deeprc-deploy bootstrap " + __version__ + "\n" + yaml.safe_dump(data, sort_keys=False)


def make_plan(
    site: Site,
    *,
    nodes: int | None = None,
    hosts: list[str] | None = None,
    pipeline: str | None = None,
    pipeline_args: list[str] | None = None,
    install: InstallMode | None = None,
    source: str | None = None,
    wheels: str = "",
    offline: bool = False,
    no_deps: bool = False,
    packages: list[str] | None = None,
    keys: KeyPair | None = None,
    peer_timeout: int = 600,
) -> BootstrapPlan:
    """Check the options against the site and each other; return the plan to render."""
    site = cloud_site(site)
    hosts = list(hosts or [])
    if nodes is None:
        nodes = max(len(hosts), 1)
    if nodes < 1:
        raise DeepRCError("bootstrap: --nodes must be 1 or more. Fix: pass the number of VMs, e.g. --nodes 2.")
    if hosts and len(hosts) != nodes:
        raise DeepRCError(
            f"bootstrap: --nodes {nodes} but --hosts lists {len(hosts)} addresses. "
            "Fix: give one address per VM, or leave --nodes out to use the number of --hosts."
        )
    if nodes > 1 and not hosts:
        raise DeepRCError(
            f"bootstrap: --nodes {nodes} needs the VMs' addresses to write the MPI hostfile. "
            "Fix: reserve private addresses (or DNS names) for the VMs and pass them as --hosts ADDR,ADDR,..."
        )
    if nodes > 1 and keys is None:
        raise DeepRCError("bootstrap: a cluster of several VMs needs a key pair. Fix: let bootstrap generate one (do not pass --no-ssh-key).")
    if install is None:
        install = "image" if site.container.runtime in ("podman", "docker") else "venv"
    if install == "image" and site.container.runtime not in ("podman", "docker"):
        raise DeepRCError(
            f"site '{site.name}' field 'container.runtime': bootstrap with --install image needs podman or docker on the VM, "
            f"not {site.container.runtime!r}. Fix: set container.runtime to podman or docker (with container.image), or use --install venv."
        )
    if source is None:
        source = f"deeprc=={__version__}"
    gpus = _gpus(site)
    net = site.network
    fabric = dict(net.env)  # fabric variables (EFA's FI_PROVIDER, ...) are site data: network.env
    hostfile = "/etc/deeprc/hostfile"
    pipeline_text = ""
    if pipeline and Path(pipeline).is_file():  # a file here: ship it; otherwise a path on the VM
        pipeline_text = Path(pipeline).read_text()
        pipeline = Path(pipeline).name
    return BootstrapPlan(
        site=site,
        site_yaml=site_yaml_for_vm(site, hosts, hostfile, fabric),
        nodes=nodes,
        hosts=hosts,
        pipeline=pipeline,
        pipeline_args=list(pipeline_args or []),
        install=install,
        source=source,
        wheels=wheels,
        offline=offline,
        no_deps=no_deps,
        packages=list(packages or []),
        keys=keys,
        slots=_slots(site, gpus),
        gpus=gpus,
        nccl_ifname=_ifname(net.nccl_socket_ifname, "nccl_socket_ifname"),
        gloo_ifname=_ifname(net.gloo_socket_ifname, "gloo_socket_ifname"),
        fabric_env=fabric,
        peer_timeout=peer_timeout,
        pipeline_text=pipeline_text,
    )
