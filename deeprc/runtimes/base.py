"""The container-runtime interface: how one command runs inside an image."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from deeprc.registry import Registry

if TYPE_CHECKING:
    from deeprc.sites.schema import Site


@dataclass
class Runtime:
    """`exec_command(image, argv, ...)` -> argv that runs `argv` inside `image` (none: argv itself)."""

    name: str = "none"
    program: str = ""

    def exec_command(
        self,
        image: str | None,
        argv: Sequence[str],
        binds: Sequence[str] = (),
        gpus: bool = False,
        site: Site | None = None,
        env: Mapping[str, str] | None = None,
    ) -> list[str]:
        return [str(a) for a in argv]

    # ---- shared helpers ----
    @staticmethod
    def _container(site: Site) -> Any:
        return getattr(site, "container", None)

    def gpu_flags(self, site: Site) -> list[str]:
        """The site's `container.gpu_flag` (split like a shell would), else this runtime's default."""
        c = self._container(site)
        if c is not None and getattr(c, "gpu_flag", None):
            return shlex.split(c.gpu_flag)
        return self.default_gpu_flags(_vendor(site))

    def default_gpu_flags(self, vendor: str) -> list[str]:
        return []

    def all_binds(self, site: Site, binds: Sequence[str]) -> list[str]:
        """Site binds, then the caller's, then host MPI paths in the bind model; duplicates dropped."""
        out: list[str] = []
        c = self._container(site)
        mpi = getattr(site, "mpi", None)
        extra = list(getattr(c, "binds", []) or []) + [str(b) for b in binds]
        if mpi is not None and getattr(mpi, "model", "hybrid") == "bind":
            extra += list(mpi.host_paths)
        for b in (expand(x) for x in extra):
            if b not in out:
                out.append(b)
        return out

    def options(self, site: Site) -> list[str]:
        c = self._container(site)
        return [str(o) for o in (getattr(c, "options", []) or [])]


def _vendor(site: Site) -> str:
    try:
        return site.partition()[1].gpu_vendor or "nvidia"
    except Exception:  # noqa: BLE001 - sites without partitions
        return "nvidia"


def bind_model_env(site: Site) -> dict[str, str]:
    """LD_LIBRARY_PATH pointing at the host MPI folders bound in (bind model only)."""
    mpi = getattr(site, "mpi", None)
    if mpi is None or mpi.model != "bind" or not mpi.host_paths:
        return {}
    libs = [p if p.rstrip("/").endswith(("lib", "lib64")) else p.rstrip("/") + "/lib" for p in mpi.host_paths]
    return {"LD_LIBRARY_PATH": ":".join(libs)}


def expand(path: str) -> str:
    """`$VAR`/`~` in image and bind paths, expanded where the rank line is built (in the job)."""
    import os

    return os.path.expandvars(os.path.expanduser(str(path)))


RUNTIMES: Registry[Runtime] = Registry("container runtime")
register_runtime = RUNTIMES.register
register_runtime("none")(Runtime)
