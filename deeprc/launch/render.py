"""Render a launch plan into job scripts and submit commands from the Jinja2 templates in deploy/."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import jinja2

from deeprc.launch.plan import LaunchPlan, StageJob
from deeprc.launch.request import LaunchRequest, RenderedJob
from deeprc.rp.config import rp_resource, srun_step_env
from deeprc.schedulers import JobRequest, get_scheduler


def deploy_dir() -> Path:
    """The deploy/ templates folder ($DEEPRC_HOME/deploy, else beside the package)."""
    home = os.environ.get("DEEPRC_HOME")
    if home:
        return Path(home) / "deploy"
    return Path(__file__).resolve().parents[2] / "deploy"


def _comment(value: object) -> str:
    """Text safe inside a `#` comment line (line breaks shown as \\n)."""
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def qpath(value: object) -> str:
    """Shell-quote a path but let plain `$VAR`/`${VAR}` references expand in the job (nothing else does).

    `/scratch/$USER/x` -> `/scratch/"${USER}"/x`; `$(cmd)`, backticks and quotes stay literal.
    """
    text, out, pos = str(value), [], 0
    for m in _VAR.finditer(text):
        if m.start() > pos:
            out.append(shlex.quote(text[pos:m.start()]))
        out.append(f'"${{{m.group(1) or m.group(2)}}}"')
        pos = m.end()
    if pos < len(text) or not out:
        out.append(shlex.quote(text[pos:]))
    return "".join(out)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(deploy_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = lambda v: shlex.quote(str(v))
    env.filters["qjoin"] = lambda v: shlex.join([str(x) for x in v])
    env.filters["comment"] = _comment
    env.filters["qpath"] = qpath
    return env


def _var(key: str) -> str:
    return "job_" + re.sub(r"[^A-Za-z0-9_]", "_", key)


def _site_env(plan: LaunchPlan) -> dict[str, str]:
    """Variable name -> shell word: config values quoted literally, cache paths may use $VAR."""
    s = plan.site
    env = {k: shlex.quote(v) for k, v in s.job_env().items()}
    env.update({k: shlex.quote(v) for k, v in
                {"DEEPRC_RUN_DIR": str(plan.run_dir), "DEEPRC_SITE": s.name, "DEEPRC_LAUNCH_MODE": plan.mode}.items()})
    if s.filesystems.image_cache:
        cache = qpath(s.filesystems.image_cache)
        env["APPTAINER_CACHEDIR"] = cache
        env["SINGULARITY_CACHEDIR"] = cache
    return env


def rank_line(plan: LaunchPlan, st: StageJob) -> list[str]:
    """The batch job's rank line of stage `st`, run as written by `deeprc-deploy run -- LINE` (one line for
    every attempt: the entry point reads the attempt from DEEPRC_ATTEMPT)."""
    from deeprc.pipeline.commands import stage_rank_line

    return stage_rank_line(plan.run_dir, plan.pipeline.stage(st.name), None, plan.site, nodes=st.nodes,
                             ranks_per_node=st.ranks_per_node)


def _request(plan: LaunchPlan, name: str, nodes: int, ntasks: int, gpus_per_node: int, out: str,
             per_node: int | None = None) -> JobRequest:
    part = plan.part
    extra = list(plan.site.directives) + list(part.directives)
    queue = part.queue if part.queue is not None else plan.partition
    return JobRequest(
        name=name, nodes=nodes, ntasks=ntasks, cores_per_node=part.cores_per_node, walltime=plan.walltime,
        gpus_per_node=gpus_per_node, ntasks_per_node=per_node, partition=queue or None, account=plan.account, qos=part.qos,
        constraint=part.constraint, output=str(plan.launch_dir / out), workdir=str(plan.run_dir), extra=extra,
    )


def _common(plan: LaunchPlan) -> dict:
    s = plan.site
    return {
        "run_dir": str(plan.run_dir), "module_reset": s.module_reset, "module_use": s.module_use, "modules": s.modules,
        "path_prepend": plan.path_prepend(), "env": _site_env(plan), "mode": plan.mode,
        "job_id_var": get_scheduler(s.scheduler).job_id_var,
    }


def _run_cmd(plan: LaunchPlan, *extra: str) -> list[str]:
    return [*plan.deeprc_command(), "run", str(plan.pipeline_file), "--run-dir", str(plan.run_dir),
            "--site", str(plan.site_file), "--profile", plan.profile, *extra]


def _rp_cores(plan: LaunchPlan) -> int:
    """Cores per node as Radical Pilot will count them (the site's `rp` overrides included)."""
    cfg = rp_resource(plan.site)[1]
    return int(cfg["cores_per_node"]) if cfg else plan.part.cores_per_node


def pilot_tasks(plan: LaunchPlan) -> str:
    """What the pilot job's Radical Pilot starts for each stage: the runner's own `PilotTasks`, for this run."""
    from deeprc.pipeline.pilot_layout import worker_ranks
    from deeprc.pipeline.pilot_tasks import PilotTasks

    pipe, site = plan.pipeline, plan.site
    programs = PilotTasks(site, plan.run_dir, plan.run_dir / "rp",
                          worker_gpus=any(s.gpus_per_rank for s in pipe.stages if not s.executable))
    launcher = site.launcher
    if launcher == "srun":
        launcher += " (" + "; ".join(srun_step_env(site.mpi.pmi, site.launcher_args)) + ")"
    lines = programs.describe(pipe, launcher, worker_ranks(pipe, plan.nodes * plan.part.cores_per_node))
    return "\n".join(lines) + "\n"


def render(plan: LaunchPlan) -> LaunchRequest:
    """The launch request: one job (pilot mode) or one job per stage in dependency order (batch mode), and
    the script that submits them."""
    request = LaunchRequest(plan, _jobs(plan))
    request.submit_text = submit_script(plan, request.jobs)
    return request


def _jobs(plan: LaunchPlan) -> list[RenderedJob]:
    env = environment()
    tmpl = env.get_template("job.sh.j2")
    sched = get_scheduler(plan.site.scheduler)
    pipe = plan.pipeline
    jobs: list[RenderedJob] = []
    if plan.mode == "pilot":
        part = plan.part
        req = _request(plan, f"deeprc-{pipe.name}", plan.nodes, plan.nodes * part.cores_per_node,
                       part.gpus_per_node, sched.output_name("pilot"))
        text = tmpl.render(
            **_common(plan), directives=sched.directives(req), title=f"pipeline {pipe.name} on site {plan.site.name}",
            rp_label=rp_resource(plan.site)[0], rp_pattern=re.escape(str(plan.run_dir / "rp")) + "/",
            run_cmd=_run_cmd(plan, "--runner", "pilot", "--cores", str(plan.nodes * _rp_cores(plan))),
        )
        jobs.append(RenderedJob("pilot", plan.launch_dir / "pilot.sh", text, var="job_pilot",
                                files={"pilot-tasks.txt": pilot_tasks(plan)}))
        return jobs
    for st in plan.stages:
        gpn = (int(st.gpus_per_rank * st.ranks_per_node + 0.999) if st.gpus_per_rank else 0)
        req = _request(plan, f"deeprc-{pipe.name}-{st.name}", st.nodes, st.ranks, gpn,
                       sched.output_name(st.name), st.ranks_per_node)
        line = rank_line(plan, st)
        text = tmpl.render(
            **_common(plan), directives=sched.directives(req), title=f"stage {st.name} of pipeline {pipe.name} on site {plan.site.name}",
            stage=st.name, rank_line=line,
            run_cmd=_run_cmd(plan, "--stage", st.name, "--runner", "batch"),
        )
        jobs.append(RenderedJob(st.name, plan.launch_dir / f"stage-{st.name}.sh", text, list(st.depends_on), _var(st.name),
                                rank_line=line))
    return jobs


def submit_script(plan: LaunchPlan, jobs: list[RenderedJob]) -> str:
    """The script that submits `jobs` in order, chaining dependencies through job-id variables; `submit()` runs
    exactly this text. Sets each job's `submit_line`."""
    sched = get_scheduler(plan.site.scheduler)
    by_key = {j.key: j for j in jobs}
    for j in jobs:
        for dep in j.after:
            if dep not in by_key:
                raise KeyError(dep)
    rows = []
    for j in jobs:
        after = [f"${{{by_key[a].var}}}" for a in j.after]
        argv = sched.submit_command(str(j.script_path), ["__AFTER__"] if after else [])
        words = [shlex.quote(a) for a in argv]
        words = [w.replace("__AFTER__", ":".join(after)) if "__AFTER__" in w else w for w in words]
        words = [f'"{w}"' if "${" in w and not w.startswith('"') else w for w in words]
        if sched.submit_stdin:
            words.append("< " + shlex.quote(str(j.script_path)))
        j.submit_line = sched.submit_line(" ".join(words), str(plan.launch_dir / (j.key + ".out")))
        rows.append({"key": j.key, "var": j.var, "submit": j.submit_line})
    env = {**plan.site.scheduler_env, **sched.submit_env(str(plan.run_dir))}
    return environment().get_template("submit.sh.j2").render(
        jobs=rows, run_dir=str(plan.run_dir), scheduler=sched.name, mode=plan.mode,
        env={k: shlex.quote(v) for k, v in env.items()},
    )
