"""What a site config says about its image: runtime, image name, variant, binds and MPI flavour."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from deeprc.errors import config_error
from deeprc.sites import find_site_file, load_site

# site MPI flavours whose libraries follow the MPICH ABI (hybrid model: bind the host's over the image's)
MPICH_ABI = {"mpich", "cray-mpich", "intel-mpi", "mvapich2"}


@dataclass
class SiteDefaults:
    """What a site config says about its image (all empty without a site)."""

    runtime: str | None = None
    image: str | None = None
    variant: str | None = None  # the site's container.variant
    binds: list[str] = field(default_factory=list)  # bind targets (charliecloud creates them in the image)
    build_args: dict[str, str] = field(default_factory=dict)
    file: Path | None = None  # the site file, named in errors

    def checked_variant(self, known: list[str]) -> str | None:
        """The site's variant, which must be one of the recipe's variants `known`."""
        if self.variant is not None and self.variant not in known:
            raise config_error(self.file, "container.variant",
                               f"'{self.variant}' is not a variant of containers/recipe.yaml (it has {', '.join(known)})",
                               f"set container.variant to one of {', '.join(known)}, or pass --variant")
        return self.variant


def site_defaults(name: str | None) -> SiteDefaults:
    """Runtime, image name, variant (container.variant, default cpu) and MPI flavour of a site."""
    if not name:
        return SiteDefaults()
    path = find_site_file(name)
    site = load_site(path)
    c = site.container
    out = SiteDefaults(c.runtime, c.image, c.variant, binds=list(c.binds), file=path)
    out.build_args["MPI"] = "mpich" if site.mpi.flavour in MPICH_ABI else "openmpi"
    return out
