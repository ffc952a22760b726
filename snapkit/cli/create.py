"""``snapkit create``: capture a workspace into a snapshot."""

from __future__ import annotations

import linecache
import logging
import runpy
import sys
import traceback
import types
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import click

from snapkit.capture import CaptureReport, capture
from snapkit.cli._common import (
    echo_json,
    human_size,
    json_option,
    quiet_option,
    split_names,
)
from snapkit.errors import ObjectError, UsageError

log = logging.getLogger(__name__)


def run_script(script: Path, argv: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run ``script`` as ``__main__`` in a fresh namespace; return its globals.

    A script that raises, or calls ``sys.exit()``, raises
    :class:`~snapkit.errors.ObjectError`: one line naming the script, the
    exception and the script's line it came through. The traceback stays
    the cause (``__cause__``); running the script with python shows it.
    """
    if not script.is_file():
        raise UsageError(f"--run {script}: no such script")
    filename = str(script)
    old_argv, old_path = sys.argv, list(sys.path)
    sys.argv = [filename, *argv]
    sys.path.insert(0, str(script.parent.resolve()))
    try:
        return runpy.run_path(filename, run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise ObjectError(
                f"--run {script} exited with status {exc.code}; fix the script "
                "before capturing its globals"
            ) from exc
        raise ObjectError(
            f"--run {script} called sys.exit() before its globals could be kept"
        ) from exc
    except Exception as exc:
        raise ObjectError(_script_failure(filename, exc)) from exc
    finally:
        sys.argv, sys.path[:] = old_argv, old_path


def _script_failure(filename: str, exc: Exception) -> str:
    if isinstance(exc, SyntaxError):
        message = exc.msg or ""
        lineno = exc.lineno if exc.filename == filename else None
    else:
        message = str(exc)
        # The innermost frame of the script itself: the line the user wrote.
        lineno = None
        for frame, line in traceback.walk_tb(exc.__traceback__):
            if frame.f_code.co_filename == filename:
                lineno = line
    message = " ".join(message.split()) or "(no message)"
    if len(message) > 300:
        message = message[:297] + "..."
    where = ""
    if lineno is not None:
        source = linecache.getline(filename, lineno).strip()
        where = f" at line {lineno}" + (f" ({source})" if source else "")
    return (
        f"--run {filename} failed{where}: {type(exc).__name__}: {message}. Fix "
        f"the script (`python {filename}` shows the traceback), then capture again"
    )


@click.command("create")
@click.argument(
    "root", required=False, type=click.Path(file_okay=False, path_type=Path)
)
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(path_type=Path),
    help="Archive to write (created, or the snapshot is added to it), or an "
    "existing folder to use as a local store.",
)
@click.option("--name", help="Snapshot name (default: the folder name).")
@click.option("--tag", "tags", multiple=True, help="Tag the snapshot; repeatable.")
@click.option(
    "--exclude",
    "file_exclude",
    multiple=True,
    help="Leave out files matching this gitignore pattern; repeatable.",
)
@click.option(
    "--include",
    "file_include",
    multiple=True,
    help="Keep files matching this pattern even if a rule drops them.",
)
@click.option(
    "--allow-secrets",
    is_flag=True,
    help="Capture files that look like secrets (.env, *.pem, ...).",
)
@click.option("--no-files", is_flag=True, help="Capture objects only.")
@click.option(
    "--run",
    "script",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Run this script and capture its globals.",
)
@click.option(
    "--keep",
    multiple=True,
    help="With --run: the globals to capture (comma-separated).",
)
@click.option(
    "--for",
    "entrypoint",
    help="With --run: keep exactly the globals SCRIPT:FUNCTION uses.",
)
@click.option("--exclude-object", multiple=True, help="Global names to leave out.")
@click.option(
    "--skip-unpicklable",
    is_flag=True,
    help="Skip objects that will not pickle instead of failing.",
)
@click.option(
    "--level",
    type=click.IntRange(1, 22),
    default=3,
    show_default=True,
    help="zstd compression level.",
)
@click.option("--push", is_flag=True, help="Capture straight to the server.")
@click.option(
    "--dry-run", is_flag=True, help="Measure what would be captured; write nothing."
)
@json_option
@quiet_option
def command(
    root: Path | None,
    output: Path | None,
    name: str | None,
    tags: tuple[str, ...],
    file_exclude: tuple[str, ...],
    file_include: tuple[str, ...],
    allow_secrets: bool,
    no_files: bool,
    script: Path | None,
    keep: tuple[str, ...],
    entrypoint: str | None,
    exclude_object: tuple[str, ...],
    skip_unpicklable: bool,
    level: int,
    push: bool,
    dry_run: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Capture ROOT (default: the current folder) into a snapshot.

    \b
    Examples:
      snapkit create -o iris.snap
      snapkit create fixtures/iris --run train.py --keep model,iris -o iris.snap
      snapkit create --dry-run
    """
    targets = sum(bool(x) for x in (output, push, dry_run))
    if targets != 1:
        raise UsageError(
            "say where the snapshot goes: -o FILE.snap, --push, or --dry-run "
            "(exactly one)"
        )
    if (keep or entrypoint) and script is None:
        raise UsageError("--keep and --for need --run SCRIPT")
    used: set[str] | None = None
    if entrypoint is not None:
        from snapkit.audit.entrypoint import parse_entrypoint, used_globals

        # Read statically, before the script runs: a typo fails fast.
        path, function = parse_entrypoint(entrypoint)
        used = used_globals(path, function) | {function}
    namespace: dict[str, Any] | None = None
    include: list[str] | None = None
    if script is not None:
        if as_json:
            # What the script prints must not break the JSON on stdout.
            with redirect_stdout(sys.stderr):
                namespace = run_script(script)
        else:
            namespace = run_script(script)
        include = split_names(keep) or None
        if used is not None:
            # Modules the function uses are libraries, recorded as such.
            include = sorted(
                n
                for n in used
                if n in namespace and not isinstance(namespace[n], types.ModuleType)
            ) + (include or [])

    to: Any = output
    client = None
    if push:
        from snapkit.remote.client import Client

        client = to = Client()
    report = CaptureReport()
    try:
        snap = capture(
            namespace=namespace,
            include=include,
            exclude=split_names(exclude_object),
            files=None if no_files else (root or Path(".")),
            file_exclude=file_exclude,
            file_include=file_include,
            allow_secrets=allow_secrets,
            name=name,
            tags=tags,
            to=to,
            dry_run=dry_run,
            level=level,
            on_unpicklable="skip" if skip_unpicklable else "raise",
            report=report,
        )
    except BaseException:
        if client is not None:
            client.abort()
        raise
    # capture() leaves a repository it was handed open; the client is ours.
    if client is not None:
        client.close()
    m = snap.manifest
    stored = sum(o.stored_size for o in m.objects) + sum(f.stored_size for f in m.files)
    if as_json:
        echo_json(
            {
                "id": snap.id,
                "name": m.name,
                "dry_run": dry_run,
                "repository": snap.repository.where,
                "objects": [
                    {
                        "name": o.name,
                        "type": o.type,
                        "raw_size": o.raw_size,
                        "stored_size": o.stored_size,
                    }
                    for o in m.objects
                ],
                "files": len(m.files),
                "files_from_cache": report.files_from_cache,
                "raw_size": m.raw_size,
                "stored_size": stored,
                "new_bytes": report.new_bytes,
                "skipped": [{"name": s.name, "reason": s.reason} for s in m.skipped],
                "secrets_left_out": report.secrets,
                "seconds": round(report.seconds, 3),
            }
        )
    elif not quiet:
        verb = "would capture" if dry_run else f"captured {snap.id[:12]}"
        click.echo(f"{verb} {m.name!r}: {len(m.objects)} objects, {len(m.files)} files")
        for o in m.objects:
            click.echo(
                f"  object {o.name:<24} {o.type:<40} {human_size(o.raw_size):>10}"
            )
        if dry_run:
            for f in m.files:
                click.echo(f"  file   {f.path:<64} {human_size(f.size):>10}")
        click.echo(
            f"{human_size(m.raw_size)} raw, {human_size(stored)} stored"
            + ("" if dry_run else f", {human_size(report.new_bytes)} new")
            + f", {report.files_from_cache} files unchanged since the last capture"
            + f", {report.seconds:.2f} s"
        )
    snap.close()
