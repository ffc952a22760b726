"""``snapkit demo``: the guided tour, end to end, on loopback."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    help="Leave the workspace, server data and restored copy here.",
)
def command(keep: Path | None) -> None:
    """Run snapkit end to end on the iris example, with an embedded server.

    Starts a server on a free loopback port, captures and pushes the iris
    workspace, changes it and pushes again, diffs, audits, restores, and
    shuts down. Needs: pip install 'snapkit[server,demo]'.
    """
    from snapkit.demo import run_demo

    run_demo(say=click.echo, keep=keep)
