"""``snapkit audit``: what a snapshot costs, what to drop, and the budget gate."""

from __future__ import annotations

import sys
from contextlib import ExitStack, redirect_stdout
from pathlib import Path
from typing import Any

import click

from snapkit.audit import audit
from snapkit.audit.html import check_html_path, write_html
from snapkit.cli._common import echo_json, json_option, open_source, split_names
from snapkit.cli.create import run_script
from snapkit.diff import STORE_MARKER, load_source
from snapkit.errors import UsageError


def _is_workspace(spec: str) -> bool:
    path = Path(spec)
    return path.is_dir() and not (path / STORE_MARKER).exists()


def _source(spec: str, stack: ExitStack) -> Any:
    if _is_workspace(spec):
        return Path(spec)
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
    "--run",
    "script",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With a workspace folder: run this script and measure its globals "
    "too (as `snapkit create --run` would capture them).",
)
@click.option(
    "--keep",
    multiple=True,
    metavar="NAMES",
    help="With --run: the globals to measure (comma-separated; default: all "
    "user variables).",
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
    script: Path | None,
    keep: tuple[str, ...],
    top: int,
    html_path: Path | None,
    as_json: bool,
) -> None:
    """Measure SOURCE (default: the current folder) and check it against limits.

    SOURCE is an archive, store folder or server snapshot id, or a workspace
    folder not captured yet (measured by a dry run: chunked and compressed,
    nothing written). A folder alone has files but no objects; add
    `--run train.py --keep model,iris` to measure the globals the script
    leaves, so that `--for score.py:predict` can mark the ones to drop:

    \b
      snapkit audit . --run train.py --keep model,iris --for train.py:score

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
    if html_path is not None:
        check_html_path(html_path)
    if keep and script is None:
        raise UsageError("--keep needs --run SCRIPT (the script whose globals to keep)")
    if script is not None and not _is_workspace(source):
        raise UsageError(
            f"--run measures a workspace folder, but {source!r} is not one; "
            "give the folder to capture, or drop --run to audit the snapshot"
        )

    if entrypoint is not None and script is None and _is_workspace(source):
        click.echo(
            f"note: {source} is a folder, which holds no objects, so --for marks "
            "none; add --run SCRIPT [--keep NAMES] to measure the script's globals",
            err=True,
        )

    with ExitStack() as stack:
        subject: Any = _source(source, stack)
        options: dict[str, Any] = {}
        if script is not None:
            # The script's globals, with the folder's files beside them: what
            # `snapkit create DIR --run SCRIPT --keep NAMES` would capture.
            options = {"files": subject, "include": split_names(keep) or None}
            # What the script prints is not the report: keep stdout for it.
            with redirect_stdout(sys.stderr):
                namespace = run_script(script)
            subject = load_source(namespace, **options)
            subject.label = f"{source} with the globals of {script} (live)"
        report = audit(
            subject,
            budget=budget,
            max_object=max_object,
            max_file=max_file,
            baseline=_source(baseline, stack) if baseline else None,
            entrypoint=entrypoint,
            top=top,
            **options,
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
