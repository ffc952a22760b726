"""``snapkit ls``: list your snapshots on the server."""

from __future__ import annotations

import dataclasses

import click

from snapkit.cli._common import echo_json, human_size, json_option
from snapkit.cli.login import connect
from snapkit.errors import UsageError

__all__ = ["command"]


@click.command("ls")
@click.option("--name", default=None, help="Only snapshots with this exact name.")
@click.option("--tag", default=None, help="Only snapshots with this tag.")
@click.option(
    "--since",
    default=None,
    help="Only snapshots created at or after this ISO 8601 time "
    "(2026-01-31, 2026-01-31T12:00:00+01:00; no offset means UTC).",
)
@json_option
def command(
    name: str | None, tag: str | None, since: str | None, as_json: bool
) -> None:
    """List your snapshots on the server, oldest first."""
    if since is not None:
        from snapkit.remote import parse_time

        try:
            since = parse_time(since)
        except UsageError as exc:
            raise UsageError(f"--since: {exc}") from exc
    with connect() as client:
        found = client.list_snapshots(name=name, tag=tag, since=since)
    if as_json:
        echo_json([dataclasses.asdict(s) for s in found])
        return
    if not found:
        click.echo("no snapshots", err=True)
        return
    rows = [("ID", "CREATED", "SIZE", "OBJECTS", "FILES", "NAME")]
    for s in found:
        label = s.name + (f" [{', '.join(s.tags)}]" if s.tags else "")
        rows.append(
            (
                s.id[:12],
                s.created[:19].replace("T", " "),
                human_size(s.raw_size),
                str(s.objects),
                str(s.files),
                label,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)]
        click.echo("  ".join([*cells, row[-1]]))
