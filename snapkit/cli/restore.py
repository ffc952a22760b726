"""``snapkit restore``: files onto disk, and a report on whether objects would load."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import click

from snapkit.cli._common import echo_json, json_option, quiet_option
from snapkit.cli.show import open_for_reading
from snapkit.restore import restore, restore_files
from snapkit.workspace import libraries
from snapkit.workspace.libraries import EnvReport


@contextlib.contextmanager
def _rows_shown_as_one_table() -> Iterator[None]:
    """Keep the library from logging each environment row as a warning.

    The command prints the whole comparison as one table instead; with both,
    every row reached stderr twice.
    """
    logger = logging.getLogger(libraries.__name__)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@click.command("restore")
@click.argument("source")
@click.option(
    "--into",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder to restore into.",
)
@click.option(
    "--only", multiple=True, help="Restore only these files or folders; repeatable."
)
@click.option(
    "--force",
    is_flag=True,
    help="Overwrite files that differ from the snapshot, in bytes or mode.",
)
@click.option(
    "--check-objects/--no-check-objects",
    default=True,
    help="Compare the recorded libraries with this interpreter and report it.",
)
@json_option
@quiet_option
def command(
    source: str,
    into: Path,
    only: tuple[str, ...],
    force: bool,
    check_objects: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Restore the files of SOURCE into a folder.

    Files never land outside the folder; existing files that differ (in
    their bytes or only their mode) are left alone unless --force. Objects
    are not unpickled here (that runs code): load them in Python with
    snapkit.open(SOURCE).load(NAME) or the notebook magic. Whether this
    interpreter has the libraries they need is reported as a warning; it
    never fails the restore.
    """
    files = only or None
    with open_for_reading(source) as snap:
        if check_objects:
            with _rows_shown_as_one_table():
                # objects=[]: nothing is unpickled, so the check only reports.
                result = restore(snap, into, objects=[], files=files, force=force)
        else:
            result = restore_files(snap, into, files, force)
    report = result.environment
    if as_json:
        echo_json(
            {
                "id": result.snapshot_id,
                "into": str(result.into),
                "written": result.written,
                "mode_changed": result.mode_changed,
                "unchanged": result.unchanged,
                "environment_ok": None if report is None else report.ok,
                "environment": _rows(report),
                "pip_install": (report.pip_line() or None) if report else None,
            }
        )
        return
    if quiet:
        return
    modes = len(result.mode_changed)
    click.echo(
        f"restored {len(result.written)} files into {result.into}"
        + (f", {modes} modes changed" if modes else "")
        + f" ({len(result.unchanged)} already identical)"
    )
    if report is not None and _rows(report):
        lines = [
            "snapkit: warning: this interpreter differs from the one that captured "
            "the objects. The files are restored; loading the objects needs:",
            report.render(),
        ]
        if report.pip_line():
            lines.append(f"to load them here, first run: {report.pip_line()}")
        click.echo("\n".join(lines), err=True)


def _rows(report: EnvReport | None) -> list[dict[str, str]]:
    """The differences that matter to loading the objects (not info rows)."""
    if report is None:
        return []
    return [
        {
            "severity": r.severity,
            "kind": r.kind,
            "name": r.name,
            "recorded": r.recorded,
            "running": r.running,
        }
        for r in report.rows
        if r.severity != "info"
    ]
