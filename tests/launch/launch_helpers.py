"""Shared helpers for the launch tests: render a site x mode, normalise machine paths."""

from __future__ import annotations

import sys
from pathlib import Path

from deeprc.launch.plan import make_plan
from deeprc.launch.render import render
from deeprc.launch.request import LaunchRequest
from deeprc.sites import load_site

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
GOLDEN_PIPELINE = HERE / "pipelines" / "golden.yaml"
RUN_DIR = "/runs/golden"


def profile_for(site: str) -> str:
    """`full` (a 4-GPU train stage) where the default partition has GPUs, else the `cpu` profile."""
    return "full" if load_site(site).partition()[1].gpus_per_node else "cpu"


def render_request(site: str, mode: str, pipeline: Path = GOLDEN_PIPELINE, **opts: object) -> LaunchRequest:
    plan = make_plan(site, pipeline, mode=mode, run_dir=RUN_DIR, profile=opts.pop("profile", None) or profile_for(site), **opts)
    return render(plan)


def render_site(site: str, mode: str, pipeline: Path = GOLDEN_PIPELINE, **opts: object) -> tuple[list, str]:
    request = render_request(site, mode, pipeline, **opts)
    return request.jobs, request.submit_text


def normalise(text: str) -> str:
    """Replace this machine's paths (venv, repository) so golden files hold on any checkout."""
    return (text.replace(sys.executable, "{PYTHON}")
                .replace(str(Path(sys.executable).parent), "{VENV_BIN}")
                .replace(str(REPO), "{REPO}"))


def dry_run_text(site: str, mode: str) -> str:
    """What `launch --dry-run` prints for the golden pipeline (LaunchRequest.dry_run), machine paths normalised."""
    return normalise(render_request(site, mode).dry_run())
