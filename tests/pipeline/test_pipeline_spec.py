"""Spec validation: cycles, unknown dependencies, misspelt keys (with their path), profiles."""

from __future__ import annotations

import pytest
import yaml

from deeprc.errors import DeepRCError
from deeprc.pipeline.spec import load_pipeline


def write(tmp_path, doc) -> str:
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(doc) if not isinstance(doc, str) else doc)
    return str(p)


def stages(*specs):
    return {"name": "t", "stages": [dict(s) for s in specs]}


def test_topological_order_and_profile(tmp_path):
    doc = stages({"name": "c", "function": "m:f", "depends_on": ["b"]}, {"name": "b", "function": "m:f", "depends_on": ["a"]},
                 {"name": "a", "function": "m:f", "params": {"n": 10, "keep": 1}})
    doc["defaults"] = {"retries": 2}
    doc["profiles"] = {"small": {"a": {"params": {"n": 1}, "ranks": 2}}}
    full = load_pipeline(write(tmp_path, doc))
    assert full.names == ["a", "b", "c"]
    assert full.stage("a").params == {"n": 10, "keep": 1} and full.stage("c").retries == 2
    small = load_pipeline(write(tmp_path, doc), "small")
    assert small.stage("a").params == {"n": 1, "keep": 1} and small.stage("a").ranks == 2
    assert small.dependants("a") == {"b", "c"}


def test_cycle_rejected(tmp_path):
    doc = stages({"name": "a", "function": "m:f", "depends_on": ["c"]}, {"name": "b", "function": "m:f", "depends_on": ["a"]},
                 {"name": "c", "function": "m:f", "depends_on": ["b"]})
    with pytest.raises(DeepRCError, match=r"cycle a -> c -> b -> a|cycle") as e:
        load_pipeline(write(tmp_path, doc))
    assert "p.yaml" in str(e.value) and "Fix:" in str(e.value)


def test_unknown_dependency_suggests(tmp_path):
    doc = stages({"name": "prepare", "function": "m:f"}, {"name": "train", "function": "m:f", "depends_on": ["prepar"]})
    with pytest.raises(DeepRCError) as e:
        load_pipeline(write(tmp_path, doc))
    msg = str(e.value)
    assert "stages[1] (train).depends_on[0]" in msg and "unknown stage 'prepar'" in msg and "'prepare'" in msg


def test_misspelt_stage_key_has_path_and_nearest(tmp_path):
    doc = stages({"name": "a", "function": "m:f"}, {"name": "b", "fuction": "m:f"})
    with pytest.raises(DeepRCError) as e:
        load_pipeline(write(tmp_path, doc))
    msg = str(e.value)
    assert "stages[1] (b).fuction" in msg and "did you mean 'function'?" in msg and str(tmp_path) in msg


def test_misspelt_top_key_and_profile_stage(tmp_path):
    with pytest.raises(DeepRCError, match="did you mean 'stages'"):
        load_pipeline(write(tmp_path, {"name": "t", "stage": []}))
    doc = stages({"name": "a", "function": "m:f"})
    doc["profiles"] = {"small": {"b": {"params": {}}}}
    with pytest.raises(DeepRCError, match=r"profiles.small.b.*unknown stage"):
        load_pipeline(write(tmp_path, doc), "small")
    doc["profiles"] = {"small": {"a": {"function": "x:y"}}}
    with pytest.raises(DeepRCError, match=r"profiles.small.a.function"):
        load_pipeline(write(tmp_path, doc), "small")


@pytest.mark.parametrize("stage,match", [
    ({"name": "a"}, "exactly one of 'function', 'command' or 'image_command'"),
    ({"name": "a", "function": "nocolon"}, "package.module:function"),
    ({"name": "a", "function": "m:f", "ranks": 0}, r"stages\[0\] \(a\).ranks"),
    ({"name": "a", "function": "m:f", "backend": "ucx"}, r"stages\[0\] \(a\).backend"),
])
def test_bad_values(tmp_path, stage, match):
    with pytest.raises(DeepRCError, match=match):
        load_pipeline(write(tmp_path, stages(stage)))


def test_yaml_and_missing_file(tmp_path):
    with pytest.raises(DeepRCError, match="not valid YAML"):
        load_pipeline(write(tmp_path, "name: [unclosed"))
    with pytest.raises(DeepRCError, match="not found"):
        load_pipeline(tmp_path / "nope.yaml")


def test_shipped_pipelines_validate():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "pipelines"
    for p in sorted(root.glob("*.yaml")):
        for profile in ("full", "small"):
            pipe = load_pipeline(p, profile) if profile == "full" or "small" in (yaml.safe_load(p.read_text()).get("profiles") or {}) else None
            assert pipe is None or pipe.stages


def test_launcher_lines_local_and_site():
    from pathlib import Path

    from deeprc.pipeline.commands import stage_rank_line
    from deeprc.pipeline.spec import Stage

    fn = Stage(name="a", function="m:f", ranks=2)
    local = stage_rank_line(Path("/r"), fn, 1, None)
    assert local[0].endswith("mpiexec") and local[1:3] == ["-n", "2"] and "--oversubscribe" in local
    assert local[-6:] == ["--run-dir", "/r", "--stage", "a", "--attempt", "1"]
    sites = pytest.importorskip("deeprc.sites")
    site = sites.Site.model_validate({"name": "x", "scheduler": "slurm", "launcher": "srun",
                                      "partitions": {"p": {"nodes": 1, "cores_per_node": 4}},
                                      "container": {"runtime": "apptainer", "image": "/img/d.sif"}})
    line = stage_rank_line(Path("/r"), fn, 1, site)
    assert line[0] == "srun" and "apptainer" in line and "/img/d.sif" in line
    assert line[line.index("/img/d.sif") + 1] == "python"  # the image's Python, not this venv's
    cmd = stage_rank_line(Path("/r"), Stage(name="c", command=["echo", "{outdir}"]), 1, site)
    # every stage runs inside the site's image, commands too (issue 15)
    assert cmd[0] == "srun" and "apptainer" in cmd and cmd[-3:] == ["/img/d.sif", "echo", "/r/stages/c"]


def test_x_keys_hold_anchors_and_are_not_read(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nx-shared: &s {a: 1, b: 2}\nstages:\n"
                    "  - {name: one, function: 'm:f', params: {<<: *s, b: 3}}\n"
                    "x-typo-still-ignored: 1\n")
    pipe = load_pipeline(path)
    assert pipe.stage("one").params == {"a": 1, "b": 3} and "x-shared" not in pipe.to_yaml()
    path.write_text("name: p\nshared: 1\nstages:\n  - {name: one, function: 'm:f'}\n")
    with pytest.raises(DeepRCError, match="unknown key 'shared'"):
        load_pipeline(path)
