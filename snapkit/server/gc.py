"""Garbage collection for the server: ownership rows first, then pack bytes.

Two steps, each safe against pushes under way:

1. **Ownership.** For each user, the rows of blobs that none of that user's
   snapshots names and that were recorded longer ago than the grace period
   are deleted, in one metadata transaction
   (:meth:`~snapkit.server.metadata.Metadata.collect_blobs`). The grace
   period protects a push whose blobs are uploaded but whose manifest is
   not committed yet. A push slower than that loses them, and its commit,
   which re-checks ownership inside its own transaction, answers 409
   ``missing_blobs``; the client uploads exactly those again and commits.
2. **Content.** Blobs no user owns any more are removed from the shared
   pack store with :func:`snapkit.store.gc.sweep`: each pack's live blobs
   are written to a new durable pack before the old one is deleted, and
   ownership is re-checked for each pack under the store's lock. Packs
   younger than the grace period are left alone: they may hold blobs just
   uploaded whose ownership is not recorded yet. A pack copy stays while
   anyone owns its blob, in whatever form. Then each form file
   (:class:`~snapkit.server.storage.FormFiles`) older than the grace period
   that no ownership row records is deleted.

Step 2 needs the store to be written by this process only (the store's
one-writer contract): run it inside the server process, or from
``snapkit server gc`` while no server runs on the data folder.
:func:`data_lock` is the lock ``snapkit server serve`` holds for that.
There is deliberately no HTTP route: one user must not trigger collection
for everyone.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterator, Set
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from snapkit.errors import UsageError
from snapkit.server.metadata import CollectedBlob, Metadata
from snapkit.server.storage import FormFiles
from snapkit.store.gc import GcReport, sweep
from snapkit.store.local import LocalStore

__all__ = [
    "DEFAULT_GRACE",
    "ServerGcReport",
    "collect_server_garbage",
    "data_lock",
    "parse_duration",
]

log = logging.getLogger(__name__)

DEFAULT_GRACE = timedelta(hours=1)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """Parse ``90s``, ``30m``, ``1h``, ``2d`` or a bare number of seconds."""
    value = text.strip().lower()
    unit = value[-1:] if value[-1:] in _UNITS else "s"
    number = value[:-1] if value[-1:] in _UNITS else value
    try:
        amount = float(number)
    except ValueError:
        amount = -1.0
    if amount < 0 or not number:
        raise UsageError(
            f"duration {text!r} is not valid; write a number with s, m, h or d, "
            "for example 1h"
        )
    return timedelta(seconds=amount * _UNITS[unit])


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class ServerGcReport:
    """What one server garbage collection did (or would do)."""

    dry_run: bool
    grace_seconds: float
    recorded_before: str
    #: Per user name: ownership rows removed and their stored bytes.
    users: dict[str, dict[str, int]] = field(default_factory=dict)
    ownership_removed: int = 0
    #: The pack step, or None when it was skipped (see ``note``).
    store: GcReport | None = None
    #: Form files nobody's row records any more, removed, and their bytes.
    forms_removed: int = 0
    form_bytes_freed: int = 0
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def collect_server_garbage(
    meta: Metadata,
    store: LocalStore | None,
    *,
    forms: FormFiles | None = None,
    grace: timedelta = DEFAULT_GRACE,
    dry_run: bool = False,
    now: datetime | None = None,
) -> ServerGcReport:
    """Collect unreferenced ownership rows, then unowned blobs of ``store``
    and unrecorded files of ``forms``.

    ``store`` and ``forms`` are the server's, written by no other process
    meanwhile; None skips their step. See the module docstring for why each
    step is safe against a push racing it.
    """
    if grace < timedelta(0):
        raise UsageError(f"grace period {grace} is negative; give 0 or more")
    moment = now or datetime.now(timezone.utc)
    cutoff = moment - grace
    report = ServerGcReport(dry_run, grace.total_seconds(), _iso(cutoff))

    rows = meta.collect_blobs(report.recorded_before, dry_run=dry_run)
    for row in rows:
        mine = report.users.setdefault(row.user_name, {"blobs": 0, "bytes": 0})
        mine["blobs"] += 1
        mine["bytes"] += row.stored_size
    report.ownership_removed = len(rows)
    if forms is not None:
        _collect_forms(meta, forms, rows, cutoff.timestamp(), report)
    if store is None:
        report.note = "packs not compacted: no pack store given"
        return report

    # On a dry run the rows are still there: discount them by hand.
    planned = Counter(row.blob_id for row in rows) if dry_run else Counter[str]()

    def keep(ids: Set[str]) -> Set[str]:
        counts = meta.owner_counts(sorted(ids))
        return {bid for bid, n in counts.items() if n > planned[bid]}

    store.flush()
    young = _young_packs(store, cutoff.timestamp())
    report.store = sweep(store, keep, dry_run=dry_run, skip=young)
    log.info(
        "server garbage collection%s: %d ownership rows of %d users removed; "
        "%d blobs, %d bytes freed from packs (%d young packs left alone)",
        " (dry run)" if dry_run else "",
        report.ownership_removed,
        len(report.users),
        report.store.blobs_removed,
        report.store.bytes_freed,
        len(young),
    )
    return report


def _collect_forms(
    meta: Metadata,
    forms: FormFiles,
    rows: list[CollectedBlob],
    cutoff: float,
    report: ServerGcReport,
) -> None:
    """Delete form files older than ``cutoff`` that no ownership row records."""
    old = [
        (bid, digest, path)
        for bid, digest, path in forms.entries()
        if path.stat().st_mtime <= cutoff
    ]
    counts = meta.form_counts([(bid, digest) for bid, digest, _ in old])
    planned = Counter[tuple[str, str]]()
    if report.dry_run:
        planned.update((r.blob_id, r.digest) for r in rows if r.digest is not None)
    for bid, digest, path in old:
        if counts.get((bid, digest), 0) > planned[bid, digest]:
            continue
        report.forms_removed += 1
        report.form_bytes_freed += path.stat().st_size
        if not report.dry_run:
            forms.remove(path)
    log.info(
        "server garbage collection%s: %d form files, %d bytes freed",
        " (dry run)" if report.dry_run else "",
        report.forms_removed,
        report.form_bytes_freed,
    )


def _young_packs(store: LocalStore, cutoff: float) -> set[str]:
    young = set()
    for name in store.pack_names():
        path = store.root / "packs" / name[:2] / name
        if path.stat().st_mtime > cutoff:
            young.add(name)
    return young


@contextmanager
def data_lock(data: str | os.PathLike[str], *, wait: bool = False) -> Iterator[bool]:
    """Hold the exclusive lock on a server data folder while the block runs.

    Yields False (and holds nothing) when another process holds it and
    ``wait`` is false. ``snapkit server serve`` and the pack step of
    ``snapkit server gc`` take it; the metadata step needs no lock.
    """
    import fcntl

    folder = Path(data)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "a+b") as handle:
        flags = fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB
        try:
            fcntl.flock(handle.fileno(), flags)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
