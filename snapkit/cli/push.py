"""``snapkit push SNAP``: copy snapshots of an archive to the server."""

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


@click.command("push")
@click.argument("snap", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--id", "snapshot_id", default=None, help="Push only this snapshot.")
@json_option
@quiet_option
def command(snap: Path, snapshot_id: str | None, as_json: bool, quiet: bool) -> None:
    """Push the snapshots of archive SNAP (or only --id) to the server.

    Only blobs the server does not hold for you are uploaded; a push that
    was interrupted can simply be run again.
    """
    with connect(progress_enabled(quiet, as_json)) as client:
        done = client.push(snap, snapshot_id)
        sent = client.bytes_sent
    if as_json:
        echo_json(
            {
                "snapshots": [
                    {
                        "id": s.snapshot_id,
                        "blobs_total": s.blobs_total,
                        "blobs_sent": s.blobs_sent,
                        "bytes_sent": s.bytes_sent,
                    }
                    for s in done
                ],
                "bytes_on_wire": sent,
            }
        )
        return
    for s in done:
        click.echo(
            f"pushed {s.snapshot_id[:12]}: {s.blobs_sent} of {s.blobs_total} "
            f"blobs sent ({human_size(s.bytes_sent)})"
        )
