"""Where Gloo/NCCL ranks meet: address and port agreed via MPI, Slurm, torchrun or the env."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from deeprc.comm.rankenv import LaunchEnv
from deeprc.errors import DeepRCError

if TYPE_CHECKING:
    from deeprc.comm.base import Communicator

ADDR_VAR = "DEEPRC_COMM_ADDR"  # host:port override for any launcher
_generation = 0  # rendezvous made by this process so far (every rank counts the same)


def next_generation() -> int:
    """Number this rendezvous, so a second init() in one process gets fresh keys and port."""
    global _generation
    _generation += 1
    return _generation - 1


def free_port() -> int:
    """A TCP port the kernel just handed out (free at this instant)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def my_address(single_node: bool) -> str:
    """How other ranks reach this host: loopback on one node, else the site's interface
    (GLOO_SOCKET_IFNAME / NCCL_SOCKET_IFNAME), else the host name unless it resolves to a
    loopback address (Debian's 127.0.1.1), else the first non-loopback interface."""
    if single_node:
        return "127.0.0.1"
    site = site_interface()
    addr = interfaces().get(site) if site else None
    if addr:
        return addr
    name = socket.gethostname()
    resolved = _resolve(name)
    if resolved and not is_loopback(resolved):
        return name
    return next(iter(_external().values()), name)


def site_interface() -> str | None:
    """The first interface the site names for Gloo or NCCL traffic (None when it names none)."""
    for var in ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME"):
        value = os.environ.get(var, "").strip()
        if value.startswith("^"):  # NCCL's "every interface but these"
            continue
        for name in value.split(","):
            if name.strip().lstrip("="):
                return name.strip().lstrip("=")
    return None


def interfaces() -> dict[str, str]:
    """IPv4 address of every up interface, by name (Linux ioctls; {} where unsupported)."""
    import fcntl
    import struct

    out: dict[str, str] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            req = struct.pack("256s", name.encode()[:15])
            try:
                flags = struct.unpack("H", fcntl.ioctl(s.fileno(), 0x8913, req)[16:18])[0]  # SIOCGIFFLAGS
                if flags & 0x1:  # IFF_UP
                    out[name] = socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x8915, req)[20:24])  # SIOCGIFADDR
            except OSError:
                continue
    return out


def _external() -> dict[str, str]:
    return {n: a for n, a in interfaces().items() if not is_loopback(a)}


def is_loopback(addr: str) -> bool:
    return addr.startswith("127.") or addr == "::1"


def _resolve(host: str) -> str | None:
    try:
        return socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except (OSError, IndexError):
        return None


def route_interface(host: str) -> str | None:
    """The interface this host would use to reach ``host`` (None when there is no route)."""
    addr = _resolve(host)
    if addr is None:
        return None
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((addr, 9))  # UDP: picks the route and source address, sends nothing
            source = s.getsockname()[0]
    except OSError:
        return None
    return next((n for n, a in interfaces().items() if a == source), None)


def pin_gloo_interface(rank0_host: str, single_node: bool) -> str | None:
    """Set GLOO_SOCKET_IFNAME, unless the site did, for ranks spread over several nodes.

    Gloo otherwise binds to the address of this host's name, which is loopback where the
    name resolves to 127.0.1.1, and remote ranks then cannot connect. The interface is the
    one that routes to rank 0, or the first non-loopback one where that route is loopback
    (rank 0's own node). Returns the interface used (None: Gloo's default).
    """
    if os.environ.get("GLOO_SOCKET_IFNAME"):
        return os.environ["GLOO_SOCKET_IFNAME"]
    if single_node:
        return None
    name = route_interface(rank0_host)
    if name is None or is_loopback(interfaces().get(name, "127.")):
        name = site_interface() or next(iter(_external()), None)
    if name:
        os.environ["GLOO_SOCKET_IFNAME"] = name
    return name


def first_host(nodelist: str) -> str:
    """First host of a Slurm node list (``scontrol show hostnames`` when present, else parsed)."""
    if shutil.which("scontrol"):
        try:
            out = subprocess.run(
                ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, timeout=20
            )
            if out.returncode == 0 and out.stdout.split():
                return out.stdout.split()[0]
        except (OSError, subprocess.TimeoutExpired):
            pass
    return parse_first_host(nodelist)


def parse_first_host(nodelist: str) -> str:
    """``"nid[0007-0009,12],gpu1"`` -> ``"nid0007"`` (Slurm's hostlist grammar, first entry)."""
    m = re.match(r"([^,\[]*)(?:\[([^\]]*)\])?([^,]*)", nodelist.strip())
    if not m or not (m.group(1) or m.group(2)):
        raise DeepRCError(
            f"deeprc.comm: cannot read the Slurm node list {nodelist!r}. Fix: check SLURM_JOB_NODELIST, "
            f"or set {ADDR_VAR}=host:port to name the rendezvous yourself."
        )
    prefix, ranges, suffix = m.group(1), m.group(2), m.group(3)
    if not ranges:
        return prefix + suffix
    first = ranges.split(",")[0].split("-")[0]
    return prefix + first + suffix


def slurm_port(env: dict | os._Environ) -> int:
    """A port derived from the job and step id, so every rank computes the same one."""
    job = int(env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID") or 0)
    step = env.get("SLURM_STEP_ID") or env.get("SLURM_STEPID") or "0"
    step_n = int(step) if str(step).isdigit() else 0
    return 15000 + (job * 131 + step_n * 7) % 15000


def agree_endpoint(env: LaunchEnv, via: "Communicator | None", generation: int = 0) -> tuple[str, int, str]:
    """(address, port, how it was agreed) of rank 0's rendezvous store."""
    override = os.environ.get(ADDR_VAR)
    if override:
        host, _, port = override.rpartition(":")
        if not host or not port.isdigit():
            raise DeepRCError(
                f"deeprc.comm: environment variable {ADDR_VAR}={override!r} is not host:port. "
                f"Fix: set it like {ADDR_VAR}=node001:29500, or unset it."
            )
        return host, int(port), ADDR_VAR
    if via is not None:
        endpoint = None
        if via.rank == 0:
            endpoint = (my_address(via.num_nodes == 1), free_port())
        host, port = via.bcast(endpoint, root=0)
        return host, int(port), f"{via.backend} bcast"
    if env.launcher == "srun":
        nodelist = os.environ.get("SLURM_STEP_NODELIST") or os.environ.get("SLURM_JOB_NODELIST")
        if nodelist:
            single = (env.num_nodes or 1) == 1
            host = "127.0.0.1" if single else first_host(nodelist)
            return host, slurm_port(os.environ) + generation, "SLURM_* variables"
    if os.environ.get("MASTER_ADDR") and os.environ.get("MASTER_PORT"):
        return os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), "MASTER_ADDR/MASTER_PORT"
    if (env.size or 1) == 1:
        return "127.0.0.1", free_port(), "single process"
    raise DeepRCError(
        f"deeprc.comm: {env.launcher} started {env.size} ranks but gave no way to agree on a rendezvous "
        f"(no MPI, no Slurm node list, no MASTER_ADDR/MASTER_PORT). Fix: launch with mpiexec or srun, "
        f"or set {ADDR_VAR}=host:port (rank 0's host and a free port) on every rank."
    )


def make_store(host: str, port: int, rank: int, size: int, timeout: float, how: str) -> Any:
    """A TCPStore served by rank 0 that every rank joined (or a DeepRCError after ``timeout``)."""
    from torch.distributed import TCPStore

    # torchrun's agent already serves a store at MASTER_ADDR:MASTER_PORT: join it as a client.
    agent = how == "MASTER_ADDR/MASTER_PORT" and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    try:
        return TCPStore(
            host, port, size, rank == 0 and not agent, timedelta(seconds=timeout), wait_for_workers=not agent
        )
    except Exception as exc:  # noqa: BLE001 - torch raises several types here
        detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise DeepRCError(
            f"deeprc.comm: rank {rank} of {size} could not meet the other ranks at {host}:{port} "
            f"(agreed through {how}) within {timeout:g} s: {detail}. Fix: check that every rank was "
            f"started and that the port is free and reachable; set {ADDR_VAR}=host:port to choose "
            f"another, or raise the timeout (DEEPRC_COMM_TIMEOUT)."
        , exit_code=1) from None
