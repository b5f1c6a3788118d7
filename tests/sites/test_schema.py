"""Site schema, loader, search path and hostname detection."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deeprc.errors import DeepRCError
from deeprc.rp.config import rp_resource
from deeprc.sites import detect_site, list_sites, load_site, parse_walltime

GOOD = {
    "description": "test cluster",
    "hostnames": ["login*.test.example.org"],
    "scheduler": "slurm",
    "launcher": "srun",
    "default_partition": "gpu",
    "partitions": {"gpu": {"nodes": 4, "cores_per_node": 64, "gpus_per_node": 4, "gpu_model": "A100", "max_walltime": "12:00:00"}},
    "container": {"runtime": "apptainer", "image": "/img/deeprc.sif", "binds": ["/scratch"]},
}


def write(tmp_path: Path, data: dict, name: str = "testsite") -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def error_of(tmp_path: Path, data: dict) -> str:
    with pytest.raises(DeepRCError) as info:
        load_site(write(tmp_path, data))
    return str(info.value)


def test_every_shipped_site_loads() -> None:
    names = list_sites()
    assert {"local", "local-slurm"} <= set(names)
    for name in names:
        site = load_site(name)
        assert site.name == name
        label, cfg = rp_resource(site)
        assert label
        if site.scheduler == "local":
            assert (label, cfg) == ("local.localhost", None)
        else:
            assert cfg["schemas"]["interactive"]["job_manager_endpoint"] == "fork://localhost/"
            assert cfg["cores_per_node"] == site.rp.get("cores_per_node", site.partition()[1].cores_per_node)


def test_good_site_from_path(tmp_path: Path) -> None:
    site = load_site(write(tmp_path, GOOD))
    assert site.name == "testsite"
    assert site.partition()[1].gpu_vendor == "nvidia"
    label, cfg = rp_resource(site)
    assert label == "deeprc.testsite"
    assert cfg["resource_manager"] == "SLURM" and cfg["gpus_per_node"] == 4
    assert cfg["launch_methods"]["order"][0] == "SRUN"


def test_misspelt_key_names_path_and_nearest(tmp_path: Path) -> None:
    msg = error_of(tmp_path, {**GOOD, "container": {"runtime": "apptainer", "imag": "/x.sif"}})
    assert "container.imag" in msg and "did you mean 'image'" in msg and "testsite.yaml" in msg
    msg = error_of(tmp_path, {**GOOD, "partitions": {"gpu": {**GOOD["partitions"]["gpu"], "gpus_per_nod": 2}}})
    assert "partitions.gpu.gpus_per_nod" in msg and "did you mean 'gpus_per_node'" in msg
    msg = error_of(tmp_path, {**GOOD, "schedular": "slurm"})
    assert "field 'schedular'" in msg and "'scheduler'" in msg


def test_wrong_type(tmp_path: Path) -> None:
    msg = error_of(tmp_path, {**GOOD, "partitions": {"gpu": {**GOOD["partitions"]["gpu"], "cores_per_node": "many"}}})
    assert "partitions.gpu.cores_per_node" in msg and "wrong type" in msg and "'many'" in msg
    msg = error_of(tmp_path, {**GOOD, "modules": "cuda"})
    assert "field 'modules'" in msg


def test_missing_image(tmp_path: Path) -> None:
    msg = error_of(tmp_path, {**GOOD, "container": {"runtime": "apptainer"}})
    assert "field 'container'" in msg and "needs an image" in msg


def test_bad_values(tmp_path: Path) -> None:
    assert "not allowed" in error_of(tmp_path, {**GOOD, "scheduler": "sge"})
    assert "default_partition" in error_of(tmp_path, {**GOOD, "default_partition": "cpu"})
    assert "max_walltime" in error_of(tmp_path, {**GOOD, "partitions": {"gpu": {**GOOD["partitions"]["gpu"], "max_walltime": "soon"}}})
    assert "environment" in error_of(tmp_path, {**GOOD, "environment": {"BAD NAME": "x"}})


def test_unknown_site_suggests(tmp_path: Path) -> None:
    with pytest.raises(DeepRCError, match="did you mean 'local-slurm'"):
        load_site("local-slurn")


def test_search_path_env_and_detect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, GOOD, "mycluster")
    monkeypatch.setenv("DEEPRC_SITES_PATH", str(tmp_path))
    assert "mycluster" in list_sites()
    assert load_site("mycluster").description == "test cluster"
    assert detect_site("login3.test.example.org") == "mycluster"
    assert detect_site("nowhere.invalid") is None


def test_walltime() -> None:
    assert parse_walltime("01:30:00") == 5400
    assert parse_walltime("1-00:00:00") == 86400
    assert parse_walltime("30") == 1800
    assert parse_walltime("2h") == 7200
    with pytest.raises(ValueError):
        parse_walltime("1:2:3:4")


def test_container_variant_is_site_data(tmp_path: Path) -> None:
    """container.variant names the image variant `build --site` builds; cpu when absent."""
    assert load_site(write(tmp_path, GOOD)).container.variant == "cpu"
    site = load_site(write(tmp_path, {**GOOD, "container": {**GOOD["container"], "variant": "cuda"}}))
    assert site.container.variant == "cuda"
    msg = error_of(tmp_path, {**GOOD, "container": {**GOOD["container"], "variant": "cuda 12"}})
    assert "field 'container.variant'" in msg and "testsite.yaml" in msg
    # every shipped GPU site says which variant it builds (NVIDIA: cuda; AMD: cpu, no ROCm variant yet)
    for name in list_sites():
        s = load_site(name)
        vendors = {p.gpu_vendor for p in s.partitions.values() if p.gpus_per_node}
        if vendors:
            want = "cuda" if "nvidia" in vendors else "cpu"
            assert s.container.variant == want, name
            assert "variant:" in (Path(__file__).resolve().parents[2] / "site-configs" / f"{name}.yaml").read_text(), name
