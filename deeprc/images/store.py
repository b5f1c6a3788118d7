"""The image store: `.deeprc/images.json`, one record (ref, digest, runtime, sif, labels) per variant."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from deeprc.errors import config_error

METADATA_ENV = "DEEPRC_IMAGES_FILE"
DEFAULT_METADATA = Path(".deeprc") / "images.json"


def metadata_path(path: str | Path | None = None) -> Path:
    """The metadata file: `path`, else $DEEPRC_IMAGES_FILE, else .deeprc/images.json."""
    return Path(path or os.environ.get(METADATA_ENV) or DEFAULT_METADATA)


def load_images(path: str | Path | None = None) -> dict[str, Any]:
    """All built images: {"images": {variant: record}} (empty when nothing was built)."""
    p = metadata_path(path)
    if not p.is_file():
        return {"images": {}}
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise config_error(p, None, f"is not valid JSON ({exc})", "delete it and run `deeprc-deploy build` again") from exc
    if not isinstance(data, dict) or not isinstance(data.get("images"), dict):
        raise config_error(p, "images", "is missing", "delete the file and run `deeprc-deploy build` again")
    return data


def image_record(variant: str = "cpu", path: str | Path | None = None) -> dict[str, Any]:
    """The last build of a variant: ref, digest, runtime, sif (for apptainer), labels."""
    p = metadata_path(path)
    record = load_images(p)["images"].get(variant)
    if record is None:
        raise config_error(p, f"images.{variant}", "has no image of this variant",
                           f"run `deeprc-deploy build --variant {variant}` first")
    return record


def save_record(record: dict[str, Any], path: str | Path | None = None) -> Path:
    """Store a build's record as the latest of its variant (atomically); returns the file."""
    p = metadata_path(path)
    data = load_images(p)
    data["images"][record["variant"]] = record
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.parent.name == ".deeprc" and not (p.parent / ".gitignore").exists():
        (p.parent / ".gitignore").write_text("*\n")
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(p)
    return p
