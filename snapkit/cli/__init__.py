"""The ``snapkit`` command line: one small module per command.

Every command prints results to stdout and diagnostics to stderr, offers
``--json`` where it prints data, and exits with the code of the error family
(see :mod:`snapkit.errors`). A :class:`~snapkit.errors.SnapkitError` becomes a
one-line message, never a traceback; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys
import traceback
from typing import Any

import click

from snapkit import __version__
from snapkit.errors import ENVIRONMENT_ERRNOS, SnapkitError, storage_error

__all__ = ["COMMAND_MODULES", "main"]

#: Each module defines one click command (or group) named ``command``.
COMMAND_MODULES = [
    "create",
    "show",
    "restore",
    "verify",
    "requirements",
    "diff",
    "audit",
    "login",
    "push",
    "pull",
    "ls",
    "rm",
    "gc",
    "server",
    "demo",
]


class _Group(click.Group):
    """Loads each command's module on first use, so ``snapkit create`` never
    imports the server, and turns snapkit errors into one line and their
    exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMAND_MODULES:
            return None
        module = importlib.import_module(f"snapkit.cli.{cmd_name}")
        command: click.Command = module.command
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SnapkitError as exc:
            click.echo(f"snapkit: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("snapkit: interrupted", err=True)
            ctx.exit(130)
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
                # A full disk or a read-only folder is the machine, not a bug.
                error = storage_error(exc, f"snapkit {ctx.invoked_subcommand}")
                click.echo(f"snapkit: error: {error}", err=True)
                ctx.exit(error.exit_code)
            # Not a user mistake: a bug. Keep the traceback, it is the report.
            click.echo(traceback.format_exc(), err=True, nl=False)
            click.echo(
                "snapkit: unexpected error (a bug); please report it with the "
                "traceback above",
                err=True,
            )
            ctx.exit(SnapkitError.exit_code)


def configure_logging(verbosity: int) -> None:
    """Send snapkit's log records to stderr: warnings by default, more with -v.

    The library never configures logging; the command line does, once, so a
    warning (a secret left out, a skipped object) prints exactly once.
    """
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logger = logging.getLogger("snapkit")
    for handler in list(logger.handlers):
        if getattr(handler, "_snapkit_cli", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._snapkit_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("snapkit: %(levelname)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="snapkit")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Log more to stderr: -v one line per operation, -vv every blob.",
)
def main(verbose: int) -> None:
    """Capture a pruned Python workspace into a snapshot, and pick it up again.

    \b
    Exit codes:
      0  success               5  required libraries missing
      1  audit budget exceeded 6  an object will not pickle or unpickle
      2  usage error           7  restore refused to write
      3  integrity or format   8  server refused or unreachable
      4  not found            10  unexpected error (a bug)
    """
    configure_logging(verbose)


def run() -> None:  # pragma: no cover - console entry for `python -m snapkit`
    sys.exit(main())
