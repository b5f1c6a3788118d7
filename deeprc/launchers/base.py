"""The launcher interface: how N ranks of one command start."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Mapping, Sequence

from deeprc.errors import DeepRCError
from deeprc.registry import Registry


@dataclass
class Launcher:
    """Build the argv that starts `ranks` copies of `argv`.

    Options every launcher accepts (unsupported ones are ignored where harmless):
    `nodes`, `ranks_per_node`, `cpus_per_rank`, `gpus_per_rank`, `gpu_bind` (bool: let the
    launcher set per-rank GPU visibility), `pmi` (srun --mpi), `flavour` (mpiexec family),
    `extra` (list of extra launcher arguments).
    """

    name: str = "local"
    program: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)
    rp_launch_method: ClassVar[str] = "FORK"  # Radical Pilot's launch method for the same launcher

    def command(self, ranks: int, argv: Sequence[str], env: Mapping[str, str] | None = None, **opts: object) -> list[str]:
        if ranks < 1:
            raise DeepRCError(f"launcher {self.name}: ranks must be at least 1 (got {ranks}). Fix: ask for one or more ranks.")
        if not argv:
            raise DeepRCError(f"launcher {self.name}: empty command. Fix: pass the program to start.")
        extra = [str(a) for a in (opts.get("extra") or [])]  # type: ignore[union-attr]
        return self.prefix(ranks, opts) + extra + env_prefix(env) + [str(a) for a in argv]

    def prefix(self, ranks: int, opts: Mapping[str, object]) -> list[str]:
        """The launcher words before the command (subclasses)."""
        if ranks != 1:
            raise DeepRCError(
                f"launcher 'local' starts exactly one process (asked for {ranks} ranks). "
                "Fix: use mpiexec, srun or another MPI launcher in the site's `launcher`."
            )
        return []


def env_prefix(env: Mapping[str, str] | None) -> list[str]:
    """`env K=V ...` so every rank sees the variables whatever the launcher forwards."""
    if not env:
        return []
    return ["env"] + [f"{k}={v}" for k, v in env.items()]


def _int(opts: Mapping[str, object], key: str) -> int | None:
    v = opts.get(key)
    return int(v) if v not in (None, "", 0) else None  # type: ignore[arg-type]


LAUNCHERS: Registry[Launcher] = Registry("launcher")
register_launcher = LAUNCHERS.register
register_launcher("local")(Launcher)
