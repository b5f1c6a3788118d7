"""One LaunchRequest for dry run and submit: for every shipped site and mode, `submit()` writes exactly the
files the dry run prints, runs exactly the submit script it shows, and the job ids chain as shown.

The shipped sites' schedulers (their partitions, accounts, PBS, LSF, Flux) do not exist here, so their
submit programs are small recorders put first on PATH: each logs its argv (and LSF's stdin) and prints a
job id in that scheduler's own format. Real submission through the same path is tested on the real Slurm
(tests/launch/test_slurm.py) and locally (tests/hostile/test_runners.py).
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from deeprc.errors import DeepRCError
from deeprc.launch.plan import make_plan
from deeprc.launch.render import render
from deeprc.sites import builtin_sites_dir

from launch_helpers import GOLDEN_PIPELINE, profile_for

SITES = sorted(p.stem for p in builtin_sites_dir().glob("*.yaml") if p.stem != "local")  # local: a real job
CASES = [(s, m) for s in SITES for m in ("pilot", "batch")]

# what each recorder prints for job N (the scheduler's own submit output)
PRINTS = {"sbatch": "{n};cluster0", "qsub": "{n}.pbs01", "bsub": "Job <{n}> is submitted to queue <batch>.",
          "flux": "f{n}"}


def recorders(folder: Path, log: Path, fail: str | None = None) -> str:
    """A PATH with a recorder for every submit program; `fail`: the second submission fails (exit 1)."""
    folder.mkdir()
    for prog, fmt in PRINTS.items():
        script = folder / prog
        script.write_text(f"""#!{sys.executable}
import json, os, sys
log, prog = {str(log)!r}, {prog!r}
n = 1001 + (len(open(log).read().splitlines()) if os.path.exists(log) else 0)
stdin = sys.stdin.read() if prog == "bsub" else ""
with open(log, "a") as f:
    f.write(json.dumps({{"prog": prog, "args": sys.argv[1:], "stdin": stdin}}) + "\\n")
if prog == {fail!r} and n == 1002:
    sys.exit(prog + ": error: Invalid account")
print({fmt!r}.format(n=n))
""")
        script.chmod(0o755)
    return f"{folder}:{os.environ['PATH']}"


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def argv_of(line: str, ids: dict[str, str]) -> list[str]:
    """The argv bash makes of a submit line's command (before `|` or `<`), with the job-id variables set."""
    command = line.split(" | ")[0].split(" < ")[0]
    setup = "".join(f"{var}={shlex.quote(v)}; " for var, v in ids.items())
    out = subprocess.run(["bash", "-c", f'{setup}args=({command}); printf "%s\\0" "${{args[@]}}"'],
                         capture_output=True, text=True, check=True).stdout
    return out.split("\0")[:-1]


def request_for(site: str, mode: str, run: Path):  # noqa: ANN201
    return render(make_plan(site, GOLDEN_PIPELINE, mode=mode, run_dir=run, profile=profile_for(site)))


@pytest.mark.parametrize("site,mode", CASES, ids=[f"{s}-{m}" for s, m in CASES])
def test_submit_runs_what_the_dry_run_shows(site: str, mode: str, tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "run"
    request = request_for(site, mode, run)
    dry = request.dry_run()
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", recorders(tmp_path / "bin", log))
    record = request.submit()

    # the files on disk are the dry run, byte for byte, and nothing else was written to launch/
    on_disk = "\n".join(
        f"### {p}" + (f" (submit, {request.plan.site.scheduler})" if p.name == "submit.sh" else "") + f"\n{p.read_text()}"
        for p, _ in request.files())
    assert on_disk == dry
    assert sorted(p.name for p in (run / "launch").iterdir()) == sorted(
        [p.name for p, _ in request.files()] + ["request.json"])
    assert stat.S_IMODE((run / "launch" / "submit.sh").stat().st_mode) == 0o700

    # the scheduler got each job's script in order, each after the ids printed before it
    seen = calls(log)
    sched = request.plan.site.scheduler
    assert [c["prog"] for c in seen] == [{"slurm": "sbatch", "pbs": "qsub", "lsf": "bsub", "flux": "flux"}[sched]] * len(request.jobs)
    ids, by_var = {}, {}
    for n, (job, call) in enumerate(zip(request.jobs, seen)):
        ids[job.key] = {"pbs": "{n}.pbs01", "flux": "f{n}"}.get(sched, "{n}").format(n=1001 + n)  # as chained
        shown = argv_of(job.submit_line, by_var)
        by_var[job.var] = ids[job.key]
        assert [Path(shown[0]).name, *shown[1:]] == [call["prog"], *call["args"]]
        if sched == "lsf":
            assert call["stdin"] == job.text  # bsub reads the script from stdin
        deps = [ids[a] for a in job.after]
        assert all(any(d in arg for arg in call["args"]) for d in deps), (call, deps)
    assert [(j["key"], j["job_id"], j["after"]) for j in record["jobs"]] == \
        [(j.key, ids[j.key], [ids[a] for a in j.after]) for j in request.jobs]
    assert json.loads((run / "launch.json").read_text())["jobs"] == record["jobs"]

    # request.json: the request as data; batch jobs hold the rank line their script runs
    manifest = json.loads((run / "launch" / "request.json").read_text())
    assert manifest == request.manifest() and manifest["scheduler"] == sched
    for job, saved in zip(request.jobs, manifest["jobs"]):
        assert saved["submit"] == job.submit_line and saved["after"] == job.after
        if mode == "batch":
            words = subprocess.run(["bash", "-c", f'{_array(job.text)}\nprintf "%s\\0" "${{rank_line[@]}}"'],
                                   capture_output=True, text=True, check=True).stdout.split("\0")[:-1]
            assert words == saved["rank_line"] and words, job.key
        else:
            assert saved["rank_line"] is None


def _array(script: str) -> str:
    return next(line for line in script.splitlines() if line.startswith("rank_line=("))


def test_a_failing_submit_names_the_job_and_keeps_what_was_queued(tmp_path: Path, monkeypatch) -> None:
    """The second sbatch fails: the error names that job, its line and sbatch's words; the first job is recorded."""
    run = tmp_path / "run"
    request = request_for("perlmutter", "batch", run)
    monkeypatch.setenv("PATH", recorders(tmp_path / "bin", tmp_path / "calls.jsonl", fail="sbatch"))
    with pytest.raises(DeepRCError) as err:
        request.submit()
    msg = str(err.value)
    second = request.jobs[1]
    assert f"submitting job '{second.key}' failed" in msg and second.submit_line in msg
    assert "Invalid account" in msg and "exited 1" in msg and "deeprc-deploy cancel" in msg
    record = json.loads((run / "launch.json").read_text())
    assert [(j["key"], j["job_id"]) for j in record["jobs"]] == [(request.jobs[0].key, "1001")]
    assert len(calls(tmp_path / "calls.jsonl")) == 2  # nothing after the failure was submitted


def test_a_missing_submit_program_is_refused_before_anything_is_written(tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "run"
    request = request_for("polaris", "batch", run)
    monkeypatch.setenv("PATH", str(tmp_path))  # no qsub
    with pytest.raises(DeepRCError, match=r"`qsub` is not on PATH"):
        request.submit()
    assert not run.exists()
