"""``snapkit diff``: what changed between two snapshots, or since a snapshot."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import click

from snapkit.cli._common import echo_json, json_option, open_source
from snapkit.diff import STORE_MARKER, Source, diff_sources, load_source, text_patch


def resolve(spec: str, stack: ExitStack) -> Source:
    """A workspace directory is the live side; anything else names a snapshot
    (kept open until ``stack`` closes: ``--patch`` reads its blobs)."""
    path = Path(spec)
    if path.is_dir() and not (path / STORE_MARKER).exists():
        return load_source(path)
    snap = stack.enter_context(open_source(spec))
    src = load_source(snap)
    src.label = spec
    return src


@click.command("diff")
@click.argument("a")
@click.argument("b", default=".")
@click.option("--stat", is_flag=True, help="Print counts per section only.")
@click.option(
    "--patch",
    is_flag=True,
    help="Also print a unified diff of small text files (reads their blobs).",
)
@click.option(
    "--exit-code",
    is_flag=True,
    help="Exit 1 when the snapshots differ, 0 when they do not (like git).",
)
@json_option
def command(
    a: str, b: str, stat: bool, patch: bool, exit_code: bool, as_json: bool
) -> None:
    """Show what changed from snapshot A to B (default B: the current folder).

    A and B are archives (FILE.snap, FILE.snap#ID, FILE.snap#latest), store
    folders, server snapshot ids, or a workspace folder, which is measured as
    it is now: `snapkit diff iris.snap .` shows what changed since the
    snapshot, like `git status`. Comparing two manifests reads no blob.

    \b
    Exit codes: 0 whether or not they differ (use --exit-code to get 1 when
    they do); 2 usage, 3 integrity, 4 not found. JSON schema:
    docs/diff-json.md ("snapkit.diff/1").
    """
    with ExitStack() as stack:
        sa, sb = resolve(a, stack), resolve(b, stack)
        d = diff_sources(sa, sb)
        if as_json:
            echo_json(d.to_json())
        else:
            click.echo(d.render(stat=stat), nl=False)
            if patch:
                for line in text_patch(d, sa, sb):
                    click.echo(line, nl=not line.endswith("\n"))
    if exit_code and d.changed:
        raise click.exceptions.Exit(1)
