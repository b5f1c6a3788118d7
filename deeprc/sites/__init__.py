"""Site configs: schema, loader, hostname detection, Radical Pilot resource configs."""

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
from deeprc.sites.rp import rp_label
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
    "rp_label",
    "search_path",
    "validate_site",
]
