"""Finding, reading and validating site configs; errors name the file, key path and fix."""

from __future__ import annotations

import difflib
import fnmatch
import os
import socket
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from deeprc.errors import DeepRCError, config_error, read_text
from deeprc.sites.schema import Site
from deeprc.validation import validation_error

_extra_dirs: list[Path] = []


def add_sites_dir(path: str | Path) -> None:
    """Add a folder (the `--sites-dir` flag) searched after $DEEPRC_SITES_PATH."""
    p = Path(path).expanduser()
    if p not in _extra_dirs:
        _extra_dirs.append(p)


def builtin_sites_dir() -> Path:
    """The shipped site-configs/ folder ($DEEPRC_HOME/site-configs, else beside the package)."""
    home = os.environ.get("DEEPRC_HOME")
    if home:
        return Path(home) / "site-configs"
    here = Path(__file__).resolve().parent
    for cand in (here.parents[1] / "site-configs", here.parent / "data" / "site-configs"):
        if cand.is_dir():
            return cand
    return here.parents[1] / "site-configs"


def search_path(sites_dir: str | Path | None = None) -> list[Path]:
    """Folders searched for `<name>.yaml`, first match wins."""
    dirs = [Path(p).expanduser() for p in os.environ.get("DEEPRC_SITES_PATH", "").split(":") if p]
    if sites_dir:
        dirs.append(Path(sites_dir).expanduser())
    dirs.extend(_extra_dirs)
    dirs.append(builtin_sites_dir())
    return dirs


def _site_files(sites_dir: str | Path | None = None) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in search_path(sites_dir):
        if not d.is_dir():
            continue
        for f in sorted(list(d.glob("*.yaml")) + list(d.glob("*.yml"))):
            if f.is_file():
                found.setdefault(f.stem, f)
    return found


def list_sites(sites_dir: str | Path | None = None) -> list[str]:
    """Names of every site on the search path."""
    return sorted(_site_files(sites_dir))


def find_site_file(name_or_path: str | Path, sites_dir: str | Path | None = None) -> Path:
    """The YAML file of a site name, or the path itself when it is a file."""
    p = Path(name_or_path).expanduser()
    if p.suffix in (".yaml", ".yml") or os.sep in str(name_or_path):
        if p.is_dir():
            raise config_error(p, None, "this is a folder, not a site file", "pass the path of a site YAML file, or "
                               "add the folder with --sites-dir or $DEEPRC_SITES_PATH and pass a site name")
        if not p.is_file():
            raise config_error(p, None, "this site file does not exist", "give an existing YAML path or a site name from `deeprc-deploy sites list`")
        return p
    files = _site_files(sites_dir)
    if str(name_or_path) in files:
        return files[str(name_or_path)]
    near = difflib.get_close_matches(str(name_or_path), list(files), n=1)
    hint = f"did you mean '{near[0]}'? " if near else ""
    raise DeepRCError(
        f"unknown site '{name_or_path}': no {name_or_path}.yaml in "
        f"{', '.join(str(d) for d in search_path(sites_dir))}. Fix: {hint}"
        "choose one of `deeprc-deploy sites list`, pass a YAML path, or add your folder with "
        "--sites-dir or $DEEPRC_SITES_PATH."
    )


def load_site(name_or_path: str | Path, sites_dir: str | Path | None = None) -> Site:
    """Load and validate a site by name or path (see :func:`search_path`)."""
    path = find_site_file(name_or_path, sites_dir)
    try:
        data = yaml.safe_load(read_text(path, "site file"))
    except yaml.YAMLError as exc:
        raise config_error(path, None, f"not valid YAML ({exc})".replace("\n", " "), "fix the YAML syntax") from None
    if data is None:
        raise config_error(path, None, "this site file is empty",
                           "describe the site (at least `scheduler:`; see site-configs/local.yaml)")
    if not isinstance(data, dict):
        raise config_error(path, None, "the top level must be a mapping of keys", "write the site as `key: value` lines")
    return validate_site(data, path)


def validate_site(data: dict[str, Any], path: str | Path = "<site>") -> Site:
    """Validate a site dict; the first problem becomes one DeepRCError."""
    data = dict(data)
    data.setdefault("name", Path(str(path)).stem)
    try:
        return Site.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, path, Site, example="site-configs/local-slurm.yaml", what="site file") from None


def detect_site(hostname: str | None = None, sites_dir: str | Path | None = None) -> str | None:
    """The first site whose `hostnames` patterns match `hostname` (default: this host's FQDN)."""
    names = [hostname] if hostname else list({socket.gethostname(), socket.getfqdn()})
    for name, path in _site_files(sites_dir).items():
        try:
            data = yaml.safe_load(read_text(path, "site file")) or {}
        except (DeepRCError, yaml.YAMLError):
            continue
        pats = data.get("hostnames") or [] if isinstance(data, dict) else []
        for pat in pats if isinstance(pats, list) else []:
            if any(fnmatch.fnmatch(h, str(pat)) for h in names):
                return name
    return None
