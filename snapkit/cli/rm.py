"""``snapkit rm ID``: forget one snapshot, on the server or in a file."""

from __future__ import annotations

from pathlib import Path

import click

from snapkit.cli._common import echo_json, json_option
from snapkit.cli.login import connect

__all__ = ["command"]


@click.command("rm")
@click.argument("snapshot_id", metavar="ID|PATH#ID")
@json_option
def command(snapshot_id: str, as_json: bool) -> None:
    """Remove snapshot ID (or a unique prefix) from the server, or from a
    store folder or archive written as PATH#ID.

    Blobs stay: on the server until `snapkit server gc`, in a store folder
    until `snapkit gc STORE`, so pushing the snapshot again is cheap. An
    archive is rewritten without the snapshot's manifest when it closes.
    """
    path, sep, wanted = snapshot_id.rpartition("#")
    if sep and Path(path).exists():
        from snapkit.snapshot import open_repository

        with open_repository(path, mode="a") as repo:
            removed = repo.remove_snapshot(wanted)
        where = path
    else:
        with connect() as client:
            removed = client.delete_snapshot(snapshot_id)
        where = client.where
    if as_json:
        echo_json({"removed": removed, "from": where})
    else:
        click.echo(f"removed {removed} from {where}")
