"""``snapkit gc STORE``: drop the blobs no snapshot of a local store names."""

from __future__ import annotations

from pathlib import Path

import click

from snapkit.cli._common import echo_json, human_size, json_option
from snapkit.errors import NotFoundError

__all__ = ["command"]


@click.command("gc")
@click.argument("store", type=click.Path(path_type=Path))
@click.option(
    "--dry-run", is_flag=True, help="Report what would be removed; change nothing."
)
@json_option
def command(store: Path, dry_run: bool, as_json: bool) -> None:
    """Remove the blobs of STORE (a store folder) that no snapshot names.

    Run it after `snapkit rm`, while nothing else writes to the store. Packs
    holding dead blobs are rewritten with only the live ones (the new pack is
    durable before the old is deleted), so a crash never loses a blob a
    snapshot needs. Archives need no garbage collection. For the server, see
    `snapkit server gc`.
    """
    if store.is_file():
        message = (
            f"{store} is an archive; archives are compacted when written, so "
            "nothing needs collecting"
        )
        if as_json:
            echo_json({"target": str(store), "kind": "archive", "note": message})
        else:
            click.echo(message)
        return
    if not store.is_dir():
        raise NotFoundError(
            f"{store} does not exist; give the folder of a snapkit store"
        )

    from snapkit.store.gc import collect_garbage
    from snapkit.store.local import LocalStore

    with LocalStore(store, create=False) as repo:
        assert isinstance(repo, LocalStore)
        report = collect_garbage(repo, dry_run=dry_run)
    if as_json:
        echo_json({"target": str(store), **report.to_dict()})
        return
    verb = "would remove" if dry_run else "removed"
    freed = "would free about" if dry_run else "freed"
    click.echo(
        f"{store}: {verb} {report.blobs_removed} blobs "
        f"({report.packs_rewritten} packs rewritten, {report.packs_deleted} "
        f"deleted), {freed} {human_size(report.bytes_freed)}; "
        f"{report.blobs_kept} blobs of {report.snapshots} snapshots kept"
    )
