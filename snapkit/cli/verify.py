"""``snapkit verify``: re-read and check every byte of an archive or store."""

from __future__ import annotations

from pathlib import Path

import click

from snapkit.cli._common import echo_json, json_option
from snapkit.errors import IntegrityError, SnapkitError
from snapkit.snapshot import open_repository


@click.command("verify")
@click.argument("target", type=click.Path(path_type=Path))
@json_option
def command(target: Path, as_json: bool) -> None:
    """Check every blob and manifest of TARGET (an archive or store folder).

    Exits 0 when every byte matches its id, 3 when anything is damaged, and
    lists each problem with the snapshot or blob it concerns.
    """
    try:
        repo = open_repository(target)
    except IntegrityError as exc:
        problems = [str(exc)]
        snapshots = 0
    else:
        with repo:
            verify = getattr(repo, "verify", None)
            if verify is None:
                raise SnapkitError(f"{repo.where} cannot be verified locally")
            problems = verify()
            snapshots = len(repo.snapshots()) if not problems else 0
    if as_json:
        echo_json({"target": str(target), "ok": not problems, "problems": problems})
    elif problems:
        for p in problems:
            click.echo(f"damaged: {p}", err=True)
    else:
        click.echo(f"{target}: ok ({snapshots} snapshots, every blob checked)")
    if problems:
        raise IntegrityError(
            f"{target}: {len(problems)} problem(s) found; restore from another copy"
        )
