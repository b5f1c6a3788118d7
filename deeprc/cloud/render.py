"""Rendering the bootstrap script and the cloud-init user-data from deploy/cloud/ templates."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import jinja2
import yaml

from deeprc.cloud.plan import BootstrapPlan
from deeprc.errors import DeepRCError

SCRIPT_TEMPLATE = "bootstrap.sh.j2"
USER_DATA_TEMPLATE = "user-data.yaml.j2"
_HEREDOC_ENDS = ("DEEPRC_SITE_EOF", "DEEPRC_KEY_EOF", "DEEPRC_PIPELINE_EOF")


def templates_dir() -> Path:
    """deploy/cloud/ ($DEEPRC_HOME/deploy/cloud, else beside the package)."""
    home = os.environ.get("DEEPRC_HOME")
    base = Path(home) if home else Path(__file__).resolve().parents[2]
    return base / "deploy" / "cloud"


def _env() -> jinja2.Environment:
    folder = templates_dir()
    if not (folder / SCRIPT_TEMPLATE).is_file():
        raise DeepRCError(
            f"bootstrap: the cloud templates are missing ({folder / SCRIPT_TEMPLATE}). "
            "Fix: run from a DeepRC checkout or set DEEPRC_HOME to the folder that holds deploy/cloud/."
        )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        comment_start_string="{#jinja",  # bash's ${#array[@]} must not open a Jinja comment
        comment_end_string="jinja#}",
    )
    env.globals["q"] = lambda v: shlex.quote(str(v))
    return env


def _ends_with_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def render_script(plan: BootstrapPlan) -> str:
    """The plain bootstrap script (bash) for images without cloud-init, and inside user-data."""
    if plan.pipeline_text:
        plan.pipeline_text = _ends_with_newline(plan.pipeline_text)
    for body in (plan.site_yaml, plan.keys.private if plan.keys else "", plan.pipeline_text):
        for end in _HEREDOC_ENDS:
            if end in body.splitlines():
                raise DeepRCError(f"bootstrap: a rendered file contains the line {end!r}. Fix: remove that line from the site config.")
    if plan.keys:
        plan.keys = type(plan.keys)(private=_ends_with_newline(plan.keys.private), public=plan.keys.public)
    plan.site_yaml = _ends_with_newline(plan.site_yaml)
    return _env().get_template(SCRIPT_TEMPLATE).render(plan=plan)


def render_user_data(script: str) -> str:
    """#cloud-config user-data that writes `script` and runs it at first boot."""
    text = _env().get_template(USER_DATA_TEMPLATE).render(script=script.rstrip("\n"))
    # The literal block must give back the script byte for byte: check it here, not on the VM.
    data = yaml.safe_load(text)
    written = data["write_files"][0]["content"]
    if written.rstrip("\n") != script.rstrip("\n"):
        raise DeepRCError("bootstrap: internal error: the script embedded in user-data does not read back unchanged. Fix: report this bug.")
    return text
