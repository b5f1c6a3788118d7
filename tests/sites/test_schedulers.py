"""Scheduler directives, submit lines and state parsing (real answers' formats)."""

from __future__ import annotations

from deeprc.schedulers import JobRequest, get_scheduler

JOB = JobRequest(name="deeprc-x", nodes=2, ntasks=8, cores_per_node=32, walltime="01:30:00", gpus_per_node=4,
                 partition="gpu", account="proj", output="/r/x.out", workdir="/r")


def test_slurm() -> None:
    s = get_scheduler("slurm")
    d = s.directives(JOB)
    assert "#SBATCH --nodes=2" in d and "#SBATCH --gpus-per-node=4" in d and "#SBATCH --account=proj" in d
    assert s.submit_command("j.sh", ["11", "12"]) == ["sbatch", "--parsable", "--dependency=afterok:11:12",
                                                     "--kill-on-invalid-dep=yes", "j.sh"]
    assert s.parse_job_id("4242;cluster\n") == "4242"
    out = "JobId=7 JobName=a UserId=root(0) JobState=RUNNING Reason=None\nJobId=8 JobName=b JobState=CANCELLED\n"
    assert s.parse_status(out, ["7", "8", "9"]) == {"7": "running", "8": "cancelled", "9": "unknown"}


def test_pbs() -> None:
    s = get_scheduler("pbs")
    d = s.directives(JOB)
    assert "#PBS -l select=2:ncpus=32:mpiprocs=4:ngpus=4" in d and "#PBS -l walltime=01:30:00" in d and "#PBS -q gpu" in d
    assert s.submit_command("j.sh", ["1.pbs"]) == ["qsub", "-W", "depend=afterok:1.pbs", "j.sh"]
    out = ("Job Id: 1.polaris-pbs-01\n    job_state = F\n    Exit_status = 0\n\n"
           "Job Id: 2.polaris-pbs-01\n    job_state = R\n\nJob Id: 3.polaris-pbs-01\n    job_state = F\n    Exit_status = 1\n")
    assert s.parse_status(out, ["1.polaris-pbs-01", "2.polaris-pbs-01", "3"]) == {
        "1.polaris-pbs-01": "done", "2.polaris-pbs-01": "running", "3": "failed"}


def test_lsf_and_flux() -> None:
    lsf = get_scheduler("lsf")
    assert "#BSUB -W 1:30" in lsf.directives(JOB) and lsf.submit_stdin
    assert lsf.submit_command("j.sh", ["5"]) == ["bsub", "-w", "done(5)"]
    assert lsf.parse_job_id("Job <12345> is submitted to queue <batch>.") == "12345"
    assert lsf.parse_status("12345 RUN\n12346 EXIT\n", ["12345", "12346"]) == {"12345": "running", "12346": "failed"}
    flux = get_scheduler("flux")
    assert "#FLUX: -t 90m" in flux.directives(JOB)
    assert flux.submit_command("j.sh", ["fA"]) == ["flux", "batch", "--dependency=afterok:fA", "j.sh"]
    assert flux.parse_status("fA COMPLETED\nfB RUN\n", ["fA", "fB"]) == {"fA": "done", "fB": "running"}
