"""Golden launch scripts for every shipped site in both modes; every script passes shellcheck.

Regenerate after an intended change: DEEPRC_REGEN_GOLDEN=1 pytest tests/launch/test_golden.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from deeprc.sites import builtin_sites_dir

from deeprc.launch.plan import make_plan
from deeprc.pipeline.pilot_tasks import PilotTasks

from launch_helpers import GOLDEN_PIPELINE, HERE, RUN_DIR, dry_run_text, profile_for, render_site

GOLDEN = HERE / "golden"
SITES = sorted(p.stem for p in builtin_sites_dir().glob("*.yaml"))
CASES = [(s, m) for s in SITES for m in ("pilot", "batch") if not (s == "local" and m == "batch")]


def test_every_shipped_site_is_covered() -> None:
    assert {"local", "local-slurm", "rivanna", "delta", "frontera", "perlmutter", "frontier", "polaris",
            "aws-p4d", "aws-p5", "gcp-a100"} <= set(SITES)


@pytest.mark.parametrize(("site", "mode"), CASES)
def test_golden(site: str, mode: str) -> None:
    text = dry_run_text(site, mode)
    path = GOLDEN / f"{site}-{mode}.txt"
    if os.environ.get("DEEPRC_REGEN_GOLDEN"):
        path.write_text(text)
    assert path.is_file(), f"no golden file {path}; run with DEEPRC_REGEN_GOLDEN=1 once and review it"
    assert text == path.read_text(), f"{site}/{mode} rendering changed; review the diff and regenerate if intended"


def test_gpu_sites_bind_gpus_and_images() -> None:
    """The per-rank lines carry each site's launcher GPU options, runtime GPU flag and fabric."""
    text = {s: dry_run_text(s, "batch") for s in ("perlmutter", "frontier", "polaris", "delta")}
    assert "srun --ntasks=4 --nodes=1 --ntasks-per-node=4 --cpus-per-task=4 --gpus-per-task=1 --gpu-bind=closest" in text["delta"]
    assert "apptainer exec --nv" in text["delta"]
    assert "podman-hpc run --rm --gpu --mpi" in text["perlmutter"] and "--constraint=gpu" in text["perlmutter"]
    assert "apptainer exec --rocm" in text["frontier"] and "--env LD_LIBRARY_PATH=/opt/cray" in text["frontier"]
    assert "NCCL_SOCKET_IFNAME=hsn0" in text["frontier"]
    assert "mpiexec -n 4 --ppn 4 --depth 4 --cpu-bind depth" in text["polaris"]
    assert "CUDA_VISIBLE_DEVICES" in text["polaris"]  # local-rank GPU visibility wrapper
    assert '-W "depend=afterok:${job_prepare}"' in dry_run_text("polaris", "batch")
    assert "--dependency=afterok:" in text["delta"]


def test_shellcheck_every_script(tmp_path: Path) -> None:
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed (apt-get install -y shellcheck; tests/infra installs it in CI)")
    files = []
    for site, mode in CASES:
        jobs, submit = render_site(site, mode)
        for j in jobs:
            f = tmp_path / f"{site}-{mode}-{j.key}.sh"
            f.write_text(j.text)
            files.append(f)
        if mode == "pilot":  # the wrappers the pilot runs its worker and executable stages with (in the image)
            plan = make_plan(site, GOLDEN_PIPELINE, mode=mode, run_dir=RUN_DIR, profile=profile_for(site))
            for name, text in PilotTasks(plan.site, plan.run_dir, plan.run_dir / "rp").wrappers().items():
                f = tmp_path / f"{site}-{name}"
                f.write_text(text)
                files.append(f)
        f = tmp_path / f"{site}-{mode}-submit.sh"
        f.write_text(submit)
        files.append(f)
    proc = subprocess.run(["shellcheck", "--shell=bash", "--severity=style", *map(str, files)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_pilot_dry_run_shows_what_each_stage_runs_in_the_image() -> None:
    """Pilot mode on an Apptainer site: the worker's and the executable stages' apptainer lines, not comments."""
    text = dry_run_text("rivanna", "pilot")
    tasks = text.split("launch/pilot-tasks.txt\n", 1)[1]
    assert "# stage " not in text
    worker = "exec apptainer exec --nv --bind /scratch --bind /project --bind /runs/golden " \
             "/scratch/deeprc/deeprc/deeprc.sif radical-pilot-raptor-worker \"$@\""
    assert worker in tasks
    assert "stage train: function task on 4 rank(s) of the warm worker (/runs/golden/rp/raptor-worker.sh, inside the image)" in tasks
    jobs, _ = render_site("rivanna", "pilot", pipeline=HERE.parents[1] / "pipelines" / "demo.yaml", profile="full")
    demo = jobs[0].files["pilot-tasks.txt"]
    assert ("stage train_hydrology: executable task, 2 rank(s): /runs/golden/rp/in-image.sh python -m "
            "deeprc.pipeline.entry --task") in demo
    assert "then execs: python -m deeprc.pipeline.entry --run-dir /runs/golden --stage train_hydrology --attempt 1" in demo
