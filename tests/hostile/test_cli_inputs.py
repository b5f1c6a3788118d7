"""Every `deeprc-deploy` command against malformed and hostile input, as one table.

Each row writes its files, sets its environment, runs the real CLI entry point (`deeprc.cli.main`, the
one error translator) and asserts: the exit code; one `error: ... Fix: ...` paragraph naming the file,
field or option (click's own usage errors for bad option values); no traceback; no marker file (a value
that reached a shell would have made one); no file outside the run folder created, changed or removed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

import hostile_checks as hostile

GOOD_STAGE = {"name": "a", "function": "deeprc.stage:resolve"}  # found, never run: validation stops first
SLURM_SITE = {"scheduler": "slurm", "launcher": "srun",
              "partitions": {"p": {"nodes": 2, "cores_per_node": 4, "max_walltime": "02:00:00"}}}
BINARY = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 2


def pipe(*stages: dict, **top: Any) -> str:
    return yaml.safe_dump({"name": "t", "stages": list(stages or [GOOD_STAGE]), **top}, sort_keys=False)


def stage(**over: Any) -> dict:
    return {**GOOD_STAGE, **over}


@dataclass
class Case:
    id: str
    argv: list[str]  # {t}: the test's folder, {m}: the marker folder
    words: list[str] = field(default_factory=list)  # what the message must name
    files: dict[str, Any] = field(default_factory=dict)  # relative path -> str | bytes | dict (YAML) | None (folder)
    env: dict[str, str] = field(default_factory=dict)
    rc: int = 2
    usage: bool = False  # a click usage error (bad option value) rather than a DeepRC paragraph
    setup: Callable[[Path], Any] | None = None
    run_folder: str = "run"  # the one folder the command may write in


RUN = ["run", "{t}/p.yaml", "--run-dir", "{t}/run"]
LAUNCH = ["launch", "{t}/p.yaml", "--site", "{t}/slurm.yaml", "--dry-run"]
RUNFOLDER = {"r/status.json": json.dumps({"run": "done", "stages": {"a": {"state": "done"}}}), "r/spec.yaml": pipe()}

CASES = [
    # ---- site files -----------------------------------------------------------------------------
    Case("site-binary", RUN + ["--site", "{t}/bin.yaml"], ["bin.yaml", "not UTF-8"], {"bin.yaml": BINARY}),
    Case("site-binary-show", ["sites", "show", "{t}/bin.yaml"], ["bin.yaml", "not UTF-8"], {"bin.yaml": BINARY}),
    Case("site-directory", RUN + ["--site", "{t}/d.yaml"], ["d.yaml", "folder"], {"d.yaml": None}),
    Case("site-empty", ["sites", "show", "{t}/empty.yaml"], ["empty.yaml", "empty"], {"empty.yaml": ""}),
    Case("site-rp-typo", ["sites", "show", "{t}/s.yaml"], ["s.yaml", "'rp'", "cores_per_node"],
         {"s.yaml": {"scheduler": "local", "rp": {"cores_per_nod": 4}}}),
    Case("site-env-name", ["sites", "show", "{t}/s.yaml"], ["environment", "not a valid environment variable name"],
         {"s.yaml": {"environment": {"A-B; touch {m}/x": "1"}}}),
    Case("site-absurd-cores", LAUNCH, ["slurm.yaml", "cores_per_node"],
         {"slurm.yaml": {**SLURM_SITE, "partitions": {"p": {"nodes": 1, "cores_per_node": 10 ** 26}}}, "p.yaml": pipe()}),
    Case("site-zero-nodes", LAUNCH, ["slurm.yaml", "nodes"],
         {"slurm.yaml": {**SLURM_SITE, "partitions": {"p": {"nodes": 0, "cores_per_node": 4}}}, "p.yaml": pipe()}),
    Case("site-yaml-syntax", ["sites", "show", "{t}/s.yaml"], ["s.yaml", "not valid YAML"], {"s.yaml": "scheduler: [local"}),
    Case("site-top-list", ["sites", "show", "{t}/s.yaml"], ["s.yaml", "mapping"], {"s.yaml": "- a\n- b\n"}),
    Case("site-typo-key", ["sites", "check", "{t}/s.yaml"], ["s.yaml", "scheduler"], {"s.yaml": "schedular: local\n"}),
    Case("site-hostile-scheduler", ["sites", "show", "{t}/s.yaml"], ["s.yaml", "scheduler", "not allowed"],
         {"s.yaml": {"scheduler": "$(touch {m}/x)"}}),
    Case("site-unknown", RUN + ["--site", "nosuchsite"], ["nosuchsite", "sites list"], {"p.yaml": pipe()}),
    Case("sites-path-one-bad", ["sites", "list"], ["bin.yaml", "not UTF-8"],
         {"sites/bin.yaml": BINARY, "sites/good.yaml": "scheduler: local\n"}, env={"DEEPRC_SITES_PATH": "{t}/sites"}),
    Case("sites-path-bad-file-hides-nothing", ["sites", "show", "good"], [], rc=0,
         files={"sites/bin.yaml": BINARY, "sites/good.yaml": "scheduler: local\n", "sites/dir.yaml": None},
         env={"DEEPRC_SITES_PATH": "{t}/sites"}),
    Case("broken-user-local", RUN, ["local.yaml", "not valid YAML"], {"sites/local.yaml": "scheduler: [", "p.yaml": pipe()},
         env={"DEEPRC_SITES_PATH": "{t}/sites"}),
    Case("sites-path-is-file", ["sites", "list"], ["DEEPRC_SITES_PATH", "not a folder"], {"f.txt": "x"},
         env={"DEEPRC_SITES_PATH": "{t}/f.txt"}),
    # ---- pipeline files ---------------------------------------------------------------------------
    Case("pipe-name-dotdot", RUN, ["p.yaml", "'name'", "../x"], {"p.yaml": pipe(name="../x")}),
    Case("pipe-name-absolute", RUN, ["p.yaml", "'name'", "/etc/x"], {"p.yaml": pipe(name="/etc/x")}),
    Case("pipe-name-dotdot-launch", LAUNCH, ["p.yaml", "'name'"], {"p.yaml": pipe(name="../../x"), "slurm.yaml": SLURM_SITE}),
    Case("stage-name-dotdot", RUN, ["p.yaml", "name", "'..'"], {"p.yaml": pipe(stage(name=".."))}),
    Case("stage-name-slash", RUN, ["p.yaml", "name"], {"p.yaml": pipe(stage(name="a/b"))}),
    Case("stage-name-hostile", RUN, ["p.yaml", "name"], {"p.yaml": pipe(stage(name="$(touch {m}/x)"))}),
    Case("output-escapes", RUN, ["p.yaml", "outputs", "../../etc/passwd"], {"p.yaml": pipe(stage(outputs=["../../etc/passwd"]))}),
    Case("output-absolute", RUN, ["p.yaml", "outputs", "/etc/hostname"], {"p.yaml": pipe(stage(outputs=["/etc/hostname"]))}),
    Case("ranks-billion", RUN, ["p.yaml", "ranks", "65536"], {"p.yaml": pipe(stage(ranks=10 ** 9))}),
    Case("ranks-1e9-text", RUN, ["p.yaml", "ranks"], {"p.yaml": "name: t\nstages: [{name: a, function: 'deeprc.stage:resolve', ranks: 1e9}]\n"}),
    Case("ranks-local-too-many", RUN, ["p.yaml", "ranks", "more than this machine"], {"p.yaml": pipe(stage(ranks=60000))}),
    Case("cores-zero", RUN, ["p.yaml", "cores_per_rank"], {"p.yaml": pipe(stage(cores_per_rank=0))}),
    Case("timeout-negative", RUN, ["p.yaml", "timeout"], {"p.yaml": pipe(stage(timeout=-1))}),
    Case("retries-huge", RUN, ["p.yaml", "retries"], {"p.yaml": pipe(stage(retries=10 ** 6))}),
    Case("function-unknown-module", RUN, ["p.yaml", "function", "no_such_mod"], {"p.yaml": pipe(stage(function="no_such_mod:f"))}),
    Case("function-missing-attr", RUN, ["p.yaml", "function", "defines no 'nope'"], {"p.yaml": pipe(stage(function="deeprc.stage:nope"))}),
    Case("function-shape", RUN, ["p.yaml", "function", "package.module:function"], {"p.yaml": pipe(stage(function="nocolon"))}),
    Case("pipe-binary", RUN, ["p.yaml", "not UTF-8"], {"p.yaml": BINARY}),
    Case("pipe-empty", RUN, ["p.yaml", "mapping"], {"p.yaml": ""}),
    Case("pipe-unknown-dep", RUN, ["p.yaml", "depends_on", "unknown stage"], {"p.yaml": pipe(stage(depends_on=["zz"]))}),
    Case("pipe-cycle", RUN, ["p.yaml", "cycle"],
         {"p.yaml": pipe(stage(name="a", depends_on=["b"]), stage(name="b", depends_on=["a"]))}),
    Case("pipe-top-typo", RUN, ["p.yaml", "stagez"], {"p.yaml": "name: t\nstagez: []\n"}),
    Case("pipe-two-kinds", RUN, ["p.yaml", "exactly one"], {"p.yaml": pipe(stage(command=["true"]))}),
    Case("pipe-params-text", RUN, ["p.yaml", "params"], {"p.yaml": pipe(stage(params="$(touch {m}/x)"))}),
    Case("profile-unknown", RUN + ["--profile", "nope"], ["p.yaml", "no profile 'nope'"], {"p.yaml": pipe()}),
    Case("stage-unknown", RUN + ["--stage", "../zz"], ["no stage '../zz'"], {"p.yaml": pipe()}),
    # ---- DeepRC's environment variables, each through another command ------------------------------
    Case("env-comm-timeout", RUN, ["DEEPRC_COMM_TIMEOUT", "abc"], {"p.yaml": pipe()}, env={"DEEPRC_COMM_TIMEOUT": "abc"}),
    Case("env-comm-timeout-neg", ["sites", "list"], ["DEEPRC_COMM_TIMEOUT"], env={"DEEPRC_COMM_TIMEOUT": "-1"}),
    Case("env-chunk-bytes", ["status", "{t}/r"], ["DEEPRC_DATA_CHUNK_BYTES"], RUNFOLDER, env={"DEEPRC_DATA_CHUNK_BYTES": "abc"}),
    Case("env-chunk-zero", ["logs", "{t}/r"], ["DEEPRC_DATA_CHUNK_BYTES"], RUNFOLDER, env={"DEEPRC_DATA_CHUNK_BYTES": "0"}),
    Case("env-kernel", ["report", "{t}/r"], ["DEEPRC_DATA_KERNEL", "bogus"], RUNFOLDER, env={"DEEPRC_DATA_KERNEL": "bogus"}),
    Case("env-rp-patches", ["cancel", "{t}/r"], ["DEEPRC_RP_PATCHES"], RUNFOLDER, env={"DEEPRC_RP_PATCHES": "nope"}),
    Case("env-sched-sleep", LAUNCH, ["DEEPRC_RP_SCHED_SLEEP"], {"p.yaml": pipe(), "slurm.yaml": SLURM_SITE},
         env={"DEEPRC_RP_SCHED_SLEEP": "$(touch {m}/x)"}),
    Case("env-blocking-max", ["comm", "test", "--ranks", "2"], ["DEEPRC_MPI_BLOCKING_MAX"], env={"DEEPRC_MPI_BLOCKING_MAX": "-5"}),
    Case("env-doctor", ["doctor"], ["DEEPRC_COMM_TIMEOUT"], env={"DEEPRC_COMM_TIMEOUT": "`touch {m}/x`"}),
    Case("env-build", ["build", "--dry-run"], ["DEEPRC_DATA_KERNEL"], env={"DEEPRC_DATA_KERNEL": "duckdb; touch {m}/x"}),
    Case("env-bootstrap", ["bootstrap", "--site", "aws-p4d", "--out", "{t}/b"], ["DEEPRC_DATA_CHUNK_BYTES"],
         env={"DEEPRC_DATA_CHUNK_BYTES": "1e99"}),
    Case("build-base-newline", ["build", "--dry-run", "--base", "x\nRUN touch {m}/x"], ["--base", "line break"]),
    Case("build-tag-newline", ["build", "--dry-run", "--tag", "t\r\nLABEL x=1"], ["--tag", "line break"]),
    # ---- command-line options --------------------------------------------------------------------
    Case("opt-cores-zero", RUN + ["--cores", "0"], ["--cores"], {"p.yaml": pipe()}, usage=True),
    Case("opt-cores-negative", RUN + ["--cores", "-3"], ["--cores"], {"p.yaml": pipe()}, usage=True),
    Case("opt-cores-huge", RUN + ["--cores", "99999999999999999999"], ["--cores"], {"p.yaml": pipe()}, usage=True),
    Case("opt-runner", RUN + ["--runner", "bogus"], ["--runner"], {"p.yaml": pipe()}, usage=True),
    Case("opt-launch-nodes", LAUNCH + ["--nodes", "0"], ["--nodes"], {"p.yaml": pipe(), "slurm.yaml": SLURM_SITE}, usage=True),
    Case("opt-launch-time", LAUNCH + ["--time", "$(touch {m}/x)"], ["--time", "walltime"], {"p.yaml": pipe(), "slurm.yaml": SLURM_SITE}),
    Case("opt-launch-partition", LAUNCH + ["--partition", "nope"], ["slurm.yaml", "no partition 'nope'"],
         {"p.yaml": pipe(), "slurm.yaml": SLURM_SITE}),
    Case("opt-logs-tail", ["logs", "{t}/r", "--tail", "-1"], ["--tail"], RUNFOLDER, usage=True),
    Case("opt-bootstrap-nodes", ["bootstrap", "--site", "aws-p4d", "--nodes", "0"], ["--nodes"], usage=True),
    Case("opt-comm-ranks", ["comm", "test", "--ranks", "0"], ["--ranks"], usage=True),
    # ---- run folders -----------------------------------------------------------------------------
    Case("status-not-a-run", ["status", "{t}/x"], ["x", "not a DeepRC run folder"], {"x/notes.txt": "mine"}),
    Case("status-truncated", ["status", "{t}/r"], ["status.json", "damaged"], {"r/status.json": '{"run": "done", "stag'}),
    Case("status-list", ["status", "{t}/r", "--json"], ["status.json", "damaged"], {"r/status.json": "[1, 2]"}),
    Case("status-binary", ["status", "{t}/r"], ["status.json", "not UTF-8"], {"r/status.json": BINARY}),
    Case("status-a-file", ["status", "{t}/f.txt"], ["f.txt", "is a file"], {"f.txt": "x"}, usage=True),
    Case("report-not-a-run", ["report", "{t}/x"], ["x", "not a DeepRC run folder"],
         {"x/report.md": "my notes", "x/metrics.json": '{"mine": 1}'}),
    Case("report-damaged", ["report", "{t}/r"], ["status.json", "damaged"], {"r/status.json": '{"stages": [1]}', "r/report.md": "keep"}),
    Case("run-into-foreign-folder", RUN[:2] + ["--run-dir", "{t}/x"], ["x", "not empty", "--run-dir"],
         {"x/notes.txt": "mine", "p.yaml": pipe()}),
    Case("run-below-a-file", RUN[:2] + ["--run-dir", "{t}/f.txt/run"], ["f.txt", "Fix:"], {"f.txt": "x", "p.yaml": pipe()}),
    Case("run-unwritable", RUN[:2] + ["--run-dir", "/proc/deeprc-hostile-run"], ["/proc/deeprc-hostile-run"], {"p.yaml": pipe()}),
    Case("logs-not-a-run", ["logs", "{t}/x"], ["x", "not a DeepRC run folder"], {"x/a.log": "mine"}),
    Case("logs-stage-escape", ["logs", "{t}/r", "--stage", "../../x"], ["'../../x'"], {**RUNFOLDER, "x.log": "outside"}),
    Case("cancel-no-launch", ["cancel", "{t}/r"], ["no launch.json"], RUNFOLDER),
    Case("cancel-garbage-record", ["cancel", "{t}/r"], ["launch.json", "cannot read"], {**RUNFOLDER, "r/launch.json": "{"}),
    Case("cancel-record-list", ["cancel", "{t}/r"], ["launch.json", "not the launch record"], {**RUNFOLDER, "r/launch.json": "[]"}),
    Case("status-record-list", ["status", "{t}/r"], ["launch.json", "not the launch record"],
         {**RUNFOLDER, "r/launch.json": '{"jobs": 5}'}),
    Case("report-damaged-timeline-and-marks", ["report", "{t}/r"], [], rc=0, run_folder="r",
         files={**RUNFOLDER, "r/timeline.jsonl": 'garbage\n{"x": 1}\n[1]\n{"stage": "a", "task": "t1", "event": "queued"',
                "r/stages/a/_done.json": "[1, 2]", "r/stages/a/_result.json": "\x00"}),
    Case("run-stage-dir-symlink", RUN[:2] + ["--run-dir", "{t}/r"], ["stages/a", "leads outside"],
         {**RUNFOLDER, "p.yaml": pipe(), "outside": None}, setup=lambda t: (t / "r" / "stages").mkdir() or
         (t / "r" / "stages" / "a").symlink_to(t / "outside")),
    Case("report-symlinked-report", ["report", "{t}/r"], ["report.md", "leads outside"], RUNFOLDER,
         setup=lambda t: (t / "r" / "report.md").symlink_to(t / "mine.md") or (t / "mine.md").write_text("mine")),
    Case("status-damaged-marks", ["status", "{t}/r", "--json"], [], rc=0, run_folder="r",
         files={**RUNFOLDER, "r/stages/a/_done.json": "[1, 2]", "r/timeline.jsonl": "\x00\x01"}),
]


def _record(run: str, job_id: str, started: str | None = None) -> str:
    return json.dumps({"scheduler": "local", "mode": "pilot", "run_dir": run,
                       "jobs": [{"key": "pilot", "job_id": job_id, "started": started}]})


CANCEL_IDS = [("1", "not a process id"), ("-1", "not a scheduler job id"), ("0", "not a process id"),
              ("$(touch {m}/x)", "not a scheduler job id"), ("123 456", "not a scheduler job id")]
CASES += [Case(f"cancel-job-id-{i}", ["cancel", "{t}/r"], ["launch.json", "jobs[0].job_id", words],
               {**RUNFOLDER, "r/launch.json": _record("{t}/r", jid)}) for i, (jid, words) in enumerate(CANCEL_IDS)]


def _fill(value: Any, t: Path, m: Path) -> Any:
    if isinstance(value, str):
        return value.replace("{t}", str(t)).replace("{m}", str(m))
    if isinstance(value, dict):
        return {_fill(k, t, m): _fill(v, t, m) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, t, m) for v in value]
    return value


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from deeprc.cli import main

    try:
        main(argv)
        rc = 0
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return rc, out, err


def check(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    t, m = tmp_path / "w", tmp_path / "marks"
    t.mkdir()
    m.mkdir()
    for rel, content in case.files.items():
        p = t / _fill(rel, t, m)
        if content is None:
            p.mkdir(parents=True, exist_ok=True)
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        content = _fill(content, t, m)
        if isinstance(content, dict):
            content = yaml.safe_dump(content)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    for k, v in case.env.items():
        monkeypatch.setenv(k, _fill(v, t, m))
    monkeypatch.chdir(t)
    if case.setup:
        case.setup(t)
    inside = t / case.run_folder
    before = hostile.snapshot(t, skip=(inside,))
    rc, out, err = run_cli(_fill(case.argv, t, m), capsys)
    assert rc == case.rc, f"exit {rc}\nstdout: {out}\nstderr: {err}"
    assert "Traceback" not in out + err
    if case.rc and case.usage:
        assert "Error: Invalid value" in err and all(w in err for w in case.words), err
    elif case.rc:
        hostile.one_paragraph(err, *_fill(case.words, t, m))
    hostile.no_marks(m)
    assert hostile.snapshot(t, skip=(inside,)) == before, "a file outside the run folder was created, changed or removed"
    assert case.run_folder != "run" or not inside.exists(), "a failed validation created the run folder"
    return err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli_rejects_cleanly(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.delenv("DEEPRC_SITES_PATH", raising=False)
    check(case, tmp_path, monkeypatch, capsys)


def test_cancel_never_signals_a_process_it_did_not_start(tmp_path: Path, monkeypatch, capsys) -> None:
    """launch.json naming a live, unrelated process group (a reused pid, an edited file): refused, it lives on."""
    victim = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        from deeprc.schedulers.local import start_time

        for started in (start_time(victim.pid), "12345", None):  # right start time but no run mark; wrong; none
            files = {**RUNFOLDER, "r/launch.json": _record("{t}/r", str(victim.pid), started)}
            shutil_rm(tmp_path)
            err = check(Case("victim", ["cancel", "{t}/r"], ["launch.json", "nothing was cancelled"], files),
                        tmp_path, monkeypatch, capsys)
            time.sleep(0.2)
            assert victim.poll() is None, f"cancel killed an unrelated process: {err}"
    finally:
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()


def shutil_rm(tmp: Path) -> None:
    import shutil

    for sub in ("w", "marks"):
        shutil.rmtree(tmp / sub, ignore_errors=True)


def test_cancel_stops_its_own_local_job(tmp_path: Path, capsys, monkeypatch) -> None:
    """The identity check lets the real thing through: a job launched for this run folder is stopped."""
    from deeprc.schedulers.local import RUN_MARK, start_time

    run = tmp_path / "r"
    run.mkdir()
    job = subprocess.Popen(["sleep", "120"], start_new_session=True, env={**os.environ, RUN_MARK: str(run)})
    try:
        (run / "launch.json").write_text(_record(str(run), str(job.pid), start_time(job.pid)))
        rc, out, err = run_cli(["cancel", str(run)], capsys)
        assert rc == 0 and str(job.pid) in out, err
        assert job.wait(timeout=10) == -signal.SIGTERM
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()


def test_bootstrap_rerun_keeps_the_cluster_key(tmp_path: Path, capsys) -> None:
    out = tmp_path / "b"
    argv = ["bootstrap", "--site", "aws-p4d", "--hosts", "10.0.0.1,10.0.0.2", "--out", str(out)]
    assert run_cli(argv, capsys)[0] == 0
    key = (out / "cluster_key").read_bytes()
    assert run_cli(argv, capsys)[0] == 0
    assert (out / "cluster_key").read_bytes() == key, "a rerun replaced the cluster's SSH key"
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "hostfile").write_text("my hosts\n")
    rc, _, err = run_cli([*argv[:-1], str(foreign)], capsys)
    assert rc == 2 and (foreign / "hostfile").read_text() == "my hosts\n"
    hostile.one_paragraph(err, str(foreign), "--out")


def test_apptainer_recipe_quotes_build_args(tmp_path: Path, monkeypatch) -> None:
    """Apptainer's %post is a shell script: a hostile build argument is exported literally, never run."""
    from deeprc.images.plan import plan_build

    marks = tmp_path / "marks"
    marks.mkdir()
    value = hostile.values(marks)["subst"] + " " + hostile.values(marks)["ticks"] + " it's"
    monkeypatch.chdir(tmp_path)
    repo = Path(__file__).resolve().parents[2]
    plan = plan_build(repo, "cpu", "apptainer", tag=None, base=None, build_args={"TORCH_VERSION": value},
                      push=False, sif_from="docker-archive", sif_path=None, outdir=tmp_path / "out")
    lines = [ln.strip() for ln in plan.deffile.read_text().splitlines() if ln.strip().startswith("export ")]
    out = subprocess.run(["bash", "-c", "\n".join(lines) + '\nprintf %s "$TORCH_VERSION"'], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0 and out.stdout == value, out.stderr
    hostile.no_marks(marks)


def test_console_script_translates_too(tmp_path: Path) -> None:
    """The installed `deeprc-deploy` (a fresh process) gives the same one paragraph, no traceback."""
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(BINARY)
    exe = Path(sys.executable).with_name("deeprc-deploy")
    proc = subprocess.run([str(exe), "sites", "show", str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    hostile.one_paragraph(proc.stderr, str(bad), "not UTF-8")


def test_suite_size() -> None:
    """The table tries a broad set: keep it that way when rows are edited."""
    assert len(CASES) >= 80
    assert len({c.id for c in CASES}) == len(CASES)
