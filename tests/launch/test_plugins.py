"""Plug-ins register themselves: a toy scheduler, launcher and runtime from a test module (toy_plugins.py)
are accepted by the site schema and rendered by `launch --dry-run` in both modes, with no DeepRC file
touched; an unregistered name is refused with the registered ones listed."""

from __future__ import annotations

from pathlib import Path

import pytest
import toy_plugins  # noqa: F401  (registers toy, toyrun, toybox)
import yaml

from deeprc.errors import DeepRCError
from deeprc.rp.config import rp_resource
from deeprc.sites import load_site

from launch_helpers import render_site

SITE = {
    "description": "a site on plug-ins defined outside DeepRC", "scheduler": "toy", "launcher": "toyrun",
    "partitions": {"p": {"nodes": 2, "cores_per_node": 4, "max_walltime": "01:00:00"}},
    "container": {"runtime": "toybox", "image": "/images/deeprc.toy"},
}


def write_site(tmp_path: Path, **over: object) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump({**SITE, **over}))
    return path


def test_toy_plugins_render_a_batch_launch(tmp_path: Path) -> None:
    jobs, submit = render_site(str(write_site(tmp_path)), "batch", profile="cpu")
    train = next(j for j in jobs if j.key == "train")
    assert "#TOY --nodes=1" in train.text and "#TOY --log=/runs/golden/launch/train.toylog" in train.text
    assert ("rank_line=(toyrun -np 2 toybox run --mount=/runs/golden /images/deeprc.toy -- python -m "
            "deeprc.pipeline.entry --run-dir /runs/golden --stage train)") in train.text
    assert "job_prepare=$(toysub /runs/golden/launch/stage-prepare.sh)" in submit
    assert 'job_train=$(toysub --after "${job_prepare}" /runs/golden/launch/stage-train.sh)' in submit


def test_toy_plugins_render_a_pilot_launch(tmp_path: Path) -> None:
    jobs, submit = render_site(str(write_site(tmp_path)), "pilot", profile="cpu")
    assert "#TOY --nodes=1" in jobs[0].text and 'export DEEPRC_JOB_ID="${TOY_JOB_ID:-$$}"' in jobs[0].text
    worker = "exec toybox run --mount=/runs/golden /images/deeprc.toy -- radical-pilot-raptor-worker \"$@\""
    assert worker in jobs[0].files["pilot-tasks.txt"]
    assert "toysub /runs/golden/launch/pilot.sh" in submit
    assert rp_resource(load_site(str(write_site(tmp_path))))[1]["resource_manager"] == "FORK"


@pytest.mark.parametrize(("key", "value", "listed"), [("scheduler", "sge", "slurm"), ("launcher", "mpirunx", "mpirun"),
                                                       ("container", {"runtime": "dockr", "image": "x"}, "docker")])
def test_unregistered_names_are_refused_with_the_registered_ones(tmp_path: Path, key: str, value: object,
                                                                 listed: str) -> None:
    with pytest.raises(DeepRCError) as err:
        load_site(str(write_site(tmp_path, **{key: value})))
    text = str(err.value)
    assert "toy.yaml" in text and "is not allowed" in text and listed in text, text
