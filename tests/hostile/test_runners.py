"""Hostile values reach stages byte for byte under both runners; nothing runs, no secret lands on disk.

The pilot runs use the suite's one shared pilot (tests/conftest.py); the launch test starts its own,
as a user's `launch` does, with the site's variables exported by the job script.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from deeprc.errors import DeepRCError
from deeprc.pipeline.cli import failure_error, run_pipeline

import hostile_checks as hostile

SECRET = "tok-3f9a1c77-$(id)-`id`-\"q\"-'s'-\\n"


def _site(tmp: Path, marks: Path) -> tuple[Path, dict[str, str]]:
    env = {"DEEPRC_TEST_TOKEN": SECRET, **{f"H_{k.upper()}": v for k, v in hostile.values(marks).items()}}
    path = tmp / "hostile-local.yaml"
    path.write_text(yaml.safe_dump({"scheduler": "local", "environment": env}))
    return path, env


def _stages(vals: dict[str, str], names: list[str]) -> list[dict]:
    show = ["DEEPRC_PARAMS", *names]
    script = ("import json, os, sys; json.dump({'argv': sys.argv[2:], 'env': {k: os.environ.get(k) for k in "
              "sys.argv[2].split(',')}}, open(os.path.join(sys.argv[1], 'out.json'), 'w'))")
    return [
        {"name": "fn", "function": "pipeline_stagefns:echo", "ranks": 2, "params": {**vals, "show": show}},
        {"name": "exe", "function": "pipeline_stagefns:echo", "framework": "tensorflow", "params": {**vals, "show": show}},
        {"name": "cmd", "command": [sys.executable, "-c", script, "{outdir}", ",".join(show), *vals.values()],
         "params": vals, "outputs": ["out.json"]},
    ]


@pytest.mark.parametrize("runner", ["pilot", "batch"])
def test_values_arrive_byte_for_byte_and_secrets_stay_off_disk(runner, pilot, stagefns_on_path, write_spec, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    vals = hostile.values(marks)
    site, env = _site(tmp_path, marks)
    spec = write_spec(tmp_path, _stages(vals, sorted(env)), name="hostile")
    run_dir = tmp_path / f"run dir 'q' $(touch {marks}/rundir)"
    before = hostile.snapshot(tmp_path, skip=(run_dir, marks))
    result, run_dir = run_pipeline(spec, runner=runner, site_name=str(site), run_dir=run_dir, quiet=True,
                                   pilot=pilot if runner == "pilot" else None)
    assert result.state == "done", str(failure_error(result, run_dir))
    hostile.no_marks(marks)
    for name in ("fn", "exe"):
        got = json.loads((run_dir / "stages" / name / "out.json").read_text())
        assert {k: got["params"][k] for k in vals} == vals
        assert got["env"] == {**env, "DEEPRC_PARAMS": got["env"]["DEEPRC_PARAMS"]}
        assert json.loads(got["env"]["DEEPRC_PARAMS"])["quotes"] == vals["quotes"]
    cmd = json.loads((run_dir / "stages" / "cmd" / "out.json").read_text())
    assert cmd["argv"][1:] == list(vals.values())  # arguments reach the command literally
    assert cmd["env"]["DEEPRC_TEST_TOKEN"] == SECRET and json.loads(cmd["env"]["DEEPRC_PARAMS"]) == vals
    # the secret is in no file: not in the run folder, not in the pilot's RP sandbox
    places = [run_dir] + ([pilot.base] if runner == "pilot" else [])
    assert [f for p in places for f in hostile.files_containing(p, SECRET)] == [
        str(run_dir / "stages" / n / "out.json") for n in ("cmd", "exe", "fn")]  # only where the stages wrote it
    assert hostile.snapshot(tmp_path, skip=(run_dir, marks)) == before  # nothing outside the run folder changed
    if runner == "pilot":
        assert stat.S_IMODE(pilot.base.stat().st_mode) == 0o700  # RP's scripts are private to their owner


def test_pilot_task_carries_no_config_text(pilot, stagefns_on_path, write_spec, tmp_path):
    """What RP writes for a task (its exec script) holds neither the secret nor any config value as text."""
    marks = tmp_path / "marks"
    marks.mkdir()
    vals = hostile.values(marks)
    site, _ = _site(tmp_path, marks)
    spec = write_spec(tmp_path, [_stages(vals, ["DEEPRC_TEST_TOKEN"])[2]], name="scripts")
    result, run_dir = run_pipeline(spec, runner="pilot", site_name=str(site), run_dir=tmp_path / "run", quiet=True, pilot=pilot)
    assert result.state == "done", str(failure_error(result, run_dir))
    task = result.stages["cmd"]["task"]
    scripts = [p for p in pilot.base.rglob(f"{task}.exec.sh")]
    assert scripts, f"no exec script of {task} under {pilot.base}"
    text = scripts[0].read_text()
    for v in (SECRET, vals["quotes"], vals["subst"], str(run_dir)):
        assert v not in text


def test_rerun_with_damaged_status_resumes(stagefns_on_path, write_spec, tmp_path):
    spec = write_spec(tmp_path, [{"name": "a", "function": "pipeline_stagefns:write"}])
    run_pipeline(spec, runner="batch", run_dir=tmp_path / "run", quiet=True, report=False)
    for junk in (b"[1, 2]", b'{"stages": {"a": 3', b"\x89PNG\x00\xff"):
        (tmp_path / "run" / "status.json").write_bytes(junk)
        result, _ = run_pipeline(spec, runner="batch", run_dir=tmp_path / "run", quiet=True, report=False)
        assert result.state == "done" and result.stages["a"]["state"] == "cached"


def _basin_spec(write_spec, tmp: Path, basin: Path, **stage) -> Path:
    return write_spec(tmp, [{"name": "load", "function": "pipeline_stagefns:load_basin", "params": {"basin": str(basin)},
                             **stage}], name="basin")


@pytest.mark.parametrize("runner", ["pilot", "batch"])
def test_stage_error_is_on_the_command_line(runner, pilot, stagefns_on_path, write_spec, tmp_path):
    """The failed stage's own one-paragraph DeepRC error, not only 'read the log'."""
    csv = tmp_path / "basin.csv"
    csv.write_text("date,prcp,pet,discharge\n1979-01-01,1,0.2,3\n1979-01-02,0,0.3,2\n")
    spec = _basin_spec(write_spec, tmp_path, csv)
    result, run_dir = run_pipeline(spec, runner=runner, run_dir=tmp_path / "run", quiet=True, report=False,
                                   pilot=pilot if runner == "pilot" else None)
    msg = str(failure_error(result, run_dir))
    assert "missing column(s) flow" in msg and str(csv) in msg and "flow_column" in msg, msg


def test_timeout_says_timeout(pilot, stagefns_on_path, write_spec, tmp_path):
    spec = write_spec(tmp_path, [{"name": "slow", "command": ["sleep", "60"], "timeout": 2}])
    t0 = time.time()
    result, run_dir = run_pipeline(spec, runner="batch", run_dir=tmp_path / "run", quiet=True, report=False)
    assert time.time() - t0 < 30
    msg = str(failure_error(result, run_dir))
    assert "timed out" in msg and "timeout of 2 s" in msg, msg


@pytest.mark.parametrize("sep,dec,bom", [(",", ".", ""), (";", ",", "\ufeff")], ids=["units-dayfirst", "european"])
def test_hydrologist_csv_runs(sep, dec, bom, stagefns_on_path, write_spec, tmp_path):
    """A units row under the header and day-first dates (as catchment CSVs come) are read as they are; so is
    the European layout (';' between fields, decimal commas, a byte-order mark)."""
    rows = "".join(sep.join([f"{d:02d}.01.1979", str(d % 3), f"0{dec}{d}", f"{10 + d}{dec}5"]) + "\n" for d in range(1, 32))
    csv = tmp_path / "catchment.csv"
    csv.write_text(bom + sep.join(["date", "prcp", "pet", "flow"]) + "\n" + sep.join(["-", "mm/d", "mm/d", "m3/s"]) + "\n" + rows)
    result, run_dir = run_pipeline(_basin_spec(write_spec, tmp_path, csv), runner="batch", run_dir=tmp_path / "run",
                                   quiet=True, report=False)
    assert result.state == "done", str(failure_error(result, run_dir))
    assert json.loads((run_dir / "stages" / "load" / "out.json").read_text()) == {"days": 31}


def test_yaml_dates_in_params_run(stagefns_on_path, write_spec, tmp_path):
    """YAML turns `start: 2020-01-01` into a date; the stage still runs and DEEPRC_PARAMS carries the ISO text."""
    spec = tmp_path / "dates.yaml"
    spec.write_text("name: dates\nstages:\n- name: c\n  command: [sh, -c, 'printf %s \"$DEEPRC_PARAMS\" > {outdir}/p.json']\n"
                    "  params: {start: 2020-01-01}\n")
    result, run_dir = run_pipeline(spec, runner="batch", run_dir=tmp_path / "run", quiet=True, report=False)
    assert result.state == "done", str(failure_error(result, run_dir))
    assert json.loads((run_dir / "stages" / "c" / "p.json").read_text()) == {"start": "2020-01-01"}


@pytest.mark.slow
def test_launch_pilot_job_keeps_site_values_literal_and_secret(tmp_path, stagefns_on_path, write_spec):
    """`launch` on a local site: the job script exports the site's variables, the pilot starts under it.
    Nothing executes, the stage sees the values exactly, and the secret is in no file of the run."""
    marks = tmp_path / "marks"
    marks.mkdir()
    vals = hostile.values(marks)
    site = tmp_path / "hostile-launch.yaml"
    site.write_text(yaml.safe_dump({
        "scheduler": "local", "environment": {"DEEPRC_TEST_TOKEN": SECRET, "H_SUBST": vals["subst"]},
        "mpi": {"env": {"H_MPI": vals["ticks"]}}, "network": {"env": {"H_NET": vals["newline"]}},
        "filesystems": {"image_cache": f"/tmp/cache $(touch {marks}/cache)"},
    }))
    show = ["DEEPRC_TEST_TOKEN", "H_SUBST", "H_MPI", "H_NET", "APPTAINER_CACHEDIR"]
    spec = write_spec(tmp_path, [{"name": "fn", "function": "pipeline_stagefns:echo", "params": {"show": show}}], name="launched")
    run_dir = tmp_path / "run"
    cli = [sys.executable, "-m", "deeprc.cli"]
    out = subprocess.run([*cli, "launch", str(spec), "--site", str(site), "--run-dir", str(run_dir)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    from deeprc.launch.follow import cancel, log_files, run_status

    try:
        deadline = time.time() + 420  # a pilot boots in ~15 s on an idle machine; far longer on a loaded one
        while time.time() < deadline:
            st = run_status(run_dir)
            if st["run"] in ("done", "failed") and all(j["state"] != "running" for j in st["jobs"]):
                break
            time.sleep(2)
    finally:
        if run_status(run_dir)["jobs"][0]["state"] == "running":
            cancel(run_dir)  # a failed or timed-out test leaves no pilot job behind
    logs = "".join(f.read_text(errors="replace") for f in log_files(run_dir))
    assert st["run"] == "done", logs[-3000:]
    hostile.no_marks(marks)
    got = json.loads((run_dir / "stages" / "fn" / "out.json").read_text())["env"]
    assert got == {"DEEPRC_TEST_TOKEN": SECRET, "H_SUBST": vals["subst"], "H_MPI": vals["ticks"],
                   "H_NET": vals["newline"], "APPTAINER_CACHEDIR": f"/tmp/cache $(touch {marks}/cache)"}
    # only the job script holds it (it must export it), private to the user; RP's files and the logs do not
    assert sorted(hostile.files_containing(run_dir, SECRET)) == [str(run_dir / "launch" / "pilot.sh"),
                                                                 str(run_dir / "stages" / "fn" / "out.json")]
    for private in (run_dir / "rp", run_dir / "launch", run_dir / "launch" / "pilot.sh"):
        assert stat.S_IMODE(private.stat().st_mode) == 0o700, private


def test_pilot_refuses_a_folder_rp_cannot_quote(tmp_path):
    """A pilot of its own lives under the run folder; RP writes that path unquoted, so an unsafe one is refused."""
    from deeprc.rp.session import Pilot

    with pytest.raises(DeepRCError, match="Radical Pilot writes unquoted"):
        Pilot(base=tmp_path / "a $(touch x)" / "rp").start()
    assert not (tmp_path / "a $(touch x)").exists()
    assert os.environ.get("RADICAL_CONFIG_USER_DIR") is None or "touch" not in os.environ["RADICAL_CONFIG_USER_DIR"]


def test_rp_resource_config_holds_no_secret_nor_unsafe_value(tmp_path):
    """The RP resource config (written to disk, run by RP's bootstrap) exports only plain fabric/MPI values;
    the site's secrets and values RP would mangle go to stages through the run process instead."""
    from deeprc.pipeline.taskenv import broker_env
    from deeprc.rp.config import rp_resource
    from deeprc.sites import load_site

    marks = tmp_path / "marks"
    marks.mkdir()
    vals = hostile.values(marks)
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump({
        "scheduler": "slurm", "partitions": {"p": {"nodes": 2, "cores_per_node": 4}},
        "environment": {"DEEPRC_TEST_TOKEN": SECRET}, "network": {"nccl_socket_ifname": "ib0", "env": {"H_NET": vals["subst"]}},
        "mpi": {"env": {"H_MPI": vals["quotes"]}}}))
    site = load_site(path)
    text = json.dumps(rp_resource(site)[1])
    assert "NCCL_SOCKET_IFNAME=ib0" in text
    for v in (SECRET, "tok-3f9a1c77", "touch", vals["quotes"]):
        assert v not in text
    assert broker_env(site, {}) == {"DEEPRC_TEST_TOKEN": SECRET, "H_NET": vals["subst"], "H_MPI": vals["quotes"]}
