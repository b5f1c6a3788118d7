"""Each bad config or option gives one precise, one-paragraph error through the CLI (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deeprc.cli import main

from launch_helpers import HERE

PIPE = str(HERE / "pipelines" / "golden.yaml")
GPU_SITE = {
    "scheduler": "slurm", "launcher": "srun", "default_partition": "gpu",
    "partitions": {"gpu": {"nodes": 2, "cores_per_node": 32, "gpus_per_node": 2, "max_walltime": "04:00:00"}},
    "container": {"runtime": "apptainer", "image": "/img/deeprc.sif"},
}


def cli_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Fix:" in err, err
    return err


def site_file(tmp_path: Path, data: dict) -> str:
    p = tmp_path / "cluster.yaml"
    p.write_text(yaml.safe_dump(data))
    return str(p)


def test_misspelt_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = {**GPU_SITE, "container": {"runtime": "apptainer", "image": "/x.sif", "bind": ["/scratch"]}}
    err = cli_error(capsys, "launch", "--site", site_file(tmp_path, bad), PIPE, "--dry-run")
    assert "cluster.yaml" in err and "container.bind" in err and "did you mean 'binds'" in err


def test_wrong_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = {**GPU_SITE, "partitions": {"gpu": {**GPU_SITE["partitions"]["gpu"], "gpus_per_node": "two"}}}
    err = cli_error(capsys, "launch", "--site", site_file(tmp_path, bad), PIPE, "--dry-run")
    assert "partitions.gpu.gpus_per_node" in err and "wrong type" in err


def test_unknown_partition(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = cli_error(capsys, "launch", "--site", site_file(tmp_path, GPU_SITE), PIPE, "--partition", "gpus", "--dry-run")
    assert "no partition 'gpus'" in err and "did you mean 'gpu'" in err


def test_more_gpus_per_rank_than_a_node_has(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pipe = yaml.safe_load(Path(PIPE).read_text())
    pipe["stages"][1]["gpus_per_rank"] = 4
    p = tmp_path / "pipe.yaml"
    p.write_text(yaml.safe_dump(pipe))
    err = cli_error(capsys, "launch", "--site", site_file(tmp_path, GPU_SITE), str(p), "--dry-run")
    assert "pipe.yaml" in err and "stages[1] (train).gpus_per_rank" in err and "has 2" in err


def test_walltime_above_the_partition_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = cli_error(capsys, "launch", "--site", site_file(tmp_path, GPU_SITE), PIPE, "--time", "5:00:00", "--dry-run")
    assert "partitions.gpu.max_walltime" in err and "04:00:00" in err


def test_missing_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = {**GPU_SITE, "container": {"runtime": "apptainer"}}
    err = cli_error(capsys, "launch", "--site", site_file(tmp_path, bad), PIPE, "--dry-run")
    assert "field 'container'" in err and "needs an image" in err


def test_too_many_nodes_and_batch_on_local(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = cli_error(capsys, "launch", "--site", site_file(tmp_path, GPU_SITE), PIPE, "--nodes", "3", "--dry-run")
    assert "partitions.gpu.nodes" in err
    err = cli_error(capsys, "launch", "--site", "local", PIPE, "--profile", "cpu", "--mode", "batch", "--dry-run")
    assert "field 'scheduler'" in err and "--mode pilot" in err


def test_sites_check_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    main(["sites", "show", "frontier", "--rp"])
    out = capsys.readouterr().out
    assert "gpu_vendor: amd" in out and '"resource_manager": "SLURM"' in out
    main(["sites", "check", "local"])
    assert "launcher mpiexec" in capsys.readouterr().out
    main(["sites", "check", "frontier"])  # off-site: what is absent here is 'missing', not a failure
    out = capsys.readouterr().out
    assert "not on the site" in out and "FAIL" not in out
