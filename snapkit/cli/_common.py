"""Pieces every command shares: options, output, and naming a snapshot.

A snapshot is named on the command line by one SOURCE string:

* ``PATH.snap`` — an archive holding one snapshot (or ``PATH.snap#ID``,
  ``PATH.snap#latest``);
* ``DIR#ID`` or ``DIR`` — a local store folder;
* ``ID`` — a snapshot on the server from ``snapkit login`` / ``SNAPKIT_URL``,
  when no file of that name exists and it is at least 4 hex digits.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from snapkit.diff import is_server_id, open_server_snapshot
from snapkit.errors import UsageError
from snapkit.snapshot import Snapshot
from snapkit.snapshot import open as open_snapshot

__all__ = [
    "echo_json",
    "human_size",
    "is_server_id",
    "json_option",
    "open_source",
    "quiet_option",
    "split_names",
]

F = TypeVar("F", bound=Callable[..., Any])


def json_option(f: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print machine-readable JSON."
    )(f)


def quiet_option(f: F) -> F:
    return click.option(
        "-q", "--quiet", is_flag=True, help="Print nothing but errors and results."
    )(f)


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False, default=str))


def split_names(values: tuple[str, ...]) -> list[str]:
    """The names of repeatable, comma-separated options (``--keep a,b --keep c``)."""
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def human_size(n: float) -> str:
    """Format a byte count with binary units: 1.5 MiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def open_source(spec: str) -> Snapshot:
    """Open the snapshot a SOURCE string names (see the module docstring)."""
    if is_server_id(spec):
        return open_server_snapshot(spec)
    path = spec.split("#", 1)[0]
    if not Path(path).exists():
        raise UsageError(
            f"{path!r} is neither an archive, a store folder nor a snapshot id; "
            "check the path, or `snapkit ls` for server snapshots"
        )
    return open_snapshot(spec)


def progress_enabled(quiet: bool, as_json: bool) -> bool:
    return not quiet and not as_json and sys.stderr.isatty()
