"""``snapkit audit``: what a snapshot costs, what to drop, and the budget gate."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from snapkit.audit import audit
from snapkit.audit.html import write_html
from snapkit.cli._common import echo_json, json_option, open_source
from snapkit.diff import STORE_MARKER, load_source


def _source(spec: str, stack: ExitStack) -> Any:
    path = Path(spec)
    if path.is_dir() and not (path / STORE_MARKER).exists():
        return path
    src = load_source(stack.enter_context(open_source(spec)))
    src.label = spec
    return src


@click.command("audit")
@click.argument("source", default=".")
@click.option("--budget", metavar="SIZE", help="Limit on the stored total.")
@click.option("--max-object", metavar="SIZE", help="Limit on each object (raw).")
@click.option("--max-file", metavar="SIZE", help="Limit on each file (raw).")
@click.option("--baseline", metavar="SNAP", help="Show what grew since SNAP.")
@click.option(
    "--for",
    "entrypoint",
    metavar="SCRIPT:FUNCTION",
    help="Mark objects the entry point does not use as purge candidates.",
)
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="How many of the largest items to list.",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a self-contained HTML report (treemap and findings).",
)
@json_option
def command(
    source: str,
    budget: str | None,
    max_object: str | None,
    max_file: str | None,
    baseline: str | None,
    entrypoint: str | None,
    top: int,
    html_path: Path | None,
    as_json: bool,
) -> None:
    """Measure SOURCE (default: the current folder) and check it against limits.

    SOURCE is an archive, store folder or server snapshot id, or a workspace
    folder not captured yet (measured by a dry run: chunked and compressed,
    nothing written).

    \b
    Sizes: 500k, 200MB, 1.5GiB. k/KB, M/MB, G/GB, T/TB are powers of 1000;
    KiB, MiB, GiB, TiB powers of 1024. --budget caps the stored total (after
    compression, each blob once); --max-object and --max-file cap each item's
    raw size. Limits may also sit in pyproject.toml (found by walking up from
    the audited folder, else the current one):
      [tool.snapkit]
      budget = "200MB"
      max-object = "100MB"
      max-file = "50MB"
    Flags override them.

    \b
    Exit codes: 0 within every limit; 1 a limit is exceeded (each violated
    rule is printed with its limit, the actual value and the largest items);
    2 usage; 4 not found. JSON schema: docs/audit-json.md ("snapkit.audit/1").
    """
    with ExitStack() as stack:
        report = audit(
            _source(source, stack),
            budget=budget,
            max_object=max_object,
            max_file=max_file,
            baseline=_source(baseline, stack) if baseline else None,
            entrypoint=entrypoint,
            top=top,
        )
    if as_json:
        echo_json(report.to_json())
    else:
        click.echo(report.render(), nl=False)
    if html_path is not None:
        write_html(report, html_path)
        if not as_json:
            click.echo(f"wrote {html_path}")
    report.check()
