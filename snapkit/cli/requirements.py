"""``snapkit requirements``: the pinned requirements a snapshot's objects need."""

from __future__ import annotations

import click

from snapkit.cli._common import open_source
from snapkit.workspace.libraries import requirements_txt


@click.command("requirements")
@click.argument("source")
def command(source: str) -> None:
    """Print a pinned requirements file for SOURCE's required libraries.

    \b
    Example:
      snapkit requirements iris.snap > requirements.txt
      pip install -r requirements.txt
    """
    with open_source(source) as snap:
        lib = snap.manifest.libraries
        click.echo(f"# snapshot {snap.id[:12]} {snap.manifest.name!r}")
        click.echo(requirements_txt(lib), nl=False)
