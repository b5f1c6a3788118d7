"""Site configs: schema, loader, hostname detection (Radical Pilot's resource config from a site: deeprc.rp.config)."""

from deeprc.sites.loader import (
    add_sites_dir,
    builtin_sites_dir,
    detect_site,
    find_site_file,
    list_sites,
    load_site,
    search_path,
    validate_site,
)
from deeprc.sites.schema import Site
from deeprc.sites.walltime import format_walltime, parse_walltime

__all__ = [
    "Site",
    "add_sites_dir",
    "builtin_sites_dir",
    "detect_site",
    "find_site_file",
    "format_walltime",
    "list_sites",
    "load_site",
    "parse_walltime",
    "search_path",
    "validate_site",
]
