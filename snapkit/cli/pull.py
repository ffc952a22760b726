"""``snapkit pull ID``: copy a server snapshot into a ``.snap`` archive."""

from __future__ import annotations

from pathlib import Path

import click

from snapkit.cli._common import (
    echo_json,
    human_size,
    json_option,
    progress_enabled,
    quiet_option,
)
from snapkit.cli.login import connect

__all__ = ["command"]


@click.command("pull")
@click.argument("snapshot_id", metavar="ID")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Archive to write (default: the first 12 digits of the id, .snap). "
    "An existing archive keeps its snapshots.",
)
@json_option
@quiet_option
def command(snapshot_id: str, output: Path | None, as_json: bool, quiet: bool) -> None:
    """Pull snapshot ID (or a unique prefix) from the server into an archive."""
    with connect(progress_enabled(quiet, as_json)) as client:
        if output is None:
            output = Path(f"{client.snapshot(snapshot_id).id[:12]}.snap")
        stats = client.pull(snapshot_id, output)
    if as_json:
        echo_json(
            {
                "id": stats.snapshot_id,
                "archive": str(output),
                "blobs_total": stats.blobs_total,
                "blobs_received": stats.blobs_sent,
                "bytes_received": stats.bytes_sent,
            }
        )
        return
    click.echo(
        f"pulled {stats.snapshot_id[:12]} into {output}: {stats.blobs_sent} of "
        f"{stats.blobs_total} blobs downloaded ({human_size(stats.bytes_sent)})"
    )
