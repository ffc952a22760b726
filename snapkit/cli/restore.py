"""``snapkit restore``: files onto disk, and a check that objects will load."""

from __future__ import annotations

from pathlib import Path

import click

from snapkit.cli._common import echo_json, json_option, open_source, quiet_option
from snapkit.restore import restore_files


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
    "--force", is_flag=True, help="Overwrite files that differ from the snapshot."
)
@click.option(
    "--check-objects/--no-check-objects",
    default=True,
    help="Compare the recorded libraries with this interpreter.",
)
@click.option(
    "--no-strict",
    is_flag=True,
    help="Report missing required libraries without failing.",
)
@json_option
@quiet_option
def command(
    source: str,
    into: Path,
    only: tuple[str, ...],
    force: bool,
    check_objects: bool,
    no_strict: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Restore the files of SOURCE into a folder.

    Files never land outside the folder; existing files that differ are left
    alone unless --force. Objects are not unpickled here (that runs code):
    load them in Python with snapkit.open(SOURCE).load(NAME) or the notebook
    magic. The environment they need is checked and reported.
    """
    with open_source(source) as snap:
        result = restore_files(snap, into, only or None, force)
        report = None
        if check_objects and snap.manifest.objects:
            report = snap.check_environment(strict=not no_strict)
    if as_json:
        echo_json(
            {
                "id": result.snapshot_id,
                "into": str(result.into),
                "written": result.written,
                "unchanged": result.unchanged,
                "environment_ok": None if report is None else report.ok,
            }
        )
        return
    if not quiet:
        click.echo(
            f"restored {len(result.written)} files into {result.into} "
            f"({len(result.unchanged)} already identical)"
        )
        if report is not None and report.rows:
            click.echo(report.render(), err=True)
