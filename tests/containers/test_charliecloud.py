"""Charliecloud as a site's runtime: the rank line it renders and the build step that unpacks the image.

(Stages really running under ch-run on both nodes of the emulated cluster: tests/cluster/test_image.py.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from deeprc import __version__
from deeprc.runtimes import get_runtime, rank_command
from deeprc.runtimes.charliecloud import mountable
from deeprc.sites import load_site

REPO = Path(__file__).resolve().parents[2]


def charliecloud_site(tmp_path: Path, **container) -> Path:
    data = yaml.safe_load((REPO / "site-configs" / "emulated-cluster.yaml").read_text())
    data["container"] = {"runtime": "charliecloud", "image": "/var/tmp/images/deeprc", **container}
    path = tmp_path / "ch-site.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_rank_line_sets_the_image_environment_and_binds(tmp_path: Path) -> None:
    site = load_site(str(charliecloud_site(tmp_path, binds=["/scratch"])))
    line = rank_command(site, 4, ["python", "-m", "deeprc.pipeline.entry"], binds=["/runs/r1"])
    i = line.index("ch-run")
    assert line[i:] == ["ch-run", "--set-env", "-b", "/scratch", "-b", "/runs/r1", "/var/tmp/images/deeprc", "--",
                        "python", "-m", "deeprc.pipeline.entry"]
    assert line[:2] == ["srun", "--ntasks=4"] and "--mpi=pmix" in line


def test_bind_model_passes_the_host_mpi_libraries(tmp_path: Path) -> None:
    path = charliecloud_site(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["mpi"].update(model="bind", host_paths=["/opt/hostmpi"])
    path.write_text(yaml.safe_dump(data))
    argv = get_runtime("charliecloud").exec_command("/img", ["true"], site=load_site(str(path)))
    assert "--set-env=LD_LIBRARY_PATH=/opt/hostmpi/lib" in argv and argv[argv.index("-b") + 1] == "/opt/hostmpi"


def test_build_unpacks_the_oci_image_with_the_site_mount_points(tmp_path: Path) -> None:
    site = charliecloud_site(tmp_path, binds=["/scratch", "/project/x"])
    proc = subprocess.run([sys.executable, "-m", "deeprc.cli", "build", "--runtime", "charliecloud", "--site", str(site),
                           "--dry-run"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [line.split(" && ", 1)[1] for line in proc.stdout.splitlines() if " && " in line]
    assert lines[0].startswith("podman build ")
    assert lines[1].endswith(f"-m deeprc.runtimes.charliecloud unpack localhost/deeprc:{__version__}-cpu /var/tmp/images/deeprc "
                             "--mount-point /scratch --mount-point /project/x"), lines[1]


def test_missing_image_is_refused_before_anything_starts(tmp_path: Path) -> None:
    site = charliecloud_site(tmp_path, image=str(tmp_path / "no-such-image"))
    proc = subprocess.run([sys.executable, "-m", "deeprc.cli", "run", str(REPO / "pipelines" / "demo.yaml"), "--site",
                           str(site), "--runner", "pilot", "--run-dir", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"field 'container.image': the image {tmp_path / 'no-such-image'} does not exist" in proc.stderr
    assert "deeprc-deploy build --site" in proc.stderr
    assert not (tmp_path / "run" / "rp").exists()


def test_binds_reach_run_folders_through_mount_points_the_image_has(tmp_path: Path) -> None:
    """ch-run cannot create /var/tmp/runs/r1 in a read-only image: the nearest mount point above it is bound."""
    image = tmp_path / "img"
    (image / "var" / "tmp").mkdir(parents=True)
    (image / "scratch" / "proj").mkdir(parents=True)
    assert mountable(str(image), "/var/tmp/runs/r1") == "/var/tmp"
    assert mountable(str(image), "/scratch/proj") == "/scratch/proj"
    assert mountable(str(image), "/nowhere/r1") == "/nowhere/r1"  # left for ch-run to report
    assert mountable(str(image), "/data:/var/tmp/in") == "/data:/var/tmp/in"  # an explicit target stays
    assert mountable(str(tmp_path / "not-here"), "/var/tmp/runs/r1") == "/var/tmp/runs/r1"  # dry run elsewhere
