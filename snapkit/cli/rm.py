"""``snapkit rm ID``: forget one of your snapshots on the server."""

from __future__ import annotations

import click

from snapkit.cli._common import echo_json, json_option
from snapkit.cli.login import connect

__all__ = ["command"]


@click.command("rm")
@click.argument("snapshot_id", metavar="ID")
@json_option
def command(snapshot_id: str, as_json: bool) -> None:
    """Remove snapshot ID (or a unique prefix) from the server.

    Its blobs stay until garbage collection, so pushing it again is cheap.
    """
    with connect() as client:
        removed = client.delete_snapshot(snapshot_id)
    if as_json:
        echo_json({"removed": removed})
    else:
        click.echo(f"removed {removed}")
