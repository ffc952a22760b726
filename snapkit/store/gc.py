"""Garbage collection of a local store: drop the blobs no snapshot names.

A pack whose blobs are all live is left alone. A pack holding any dead blob
is rewritten: its live blobs go into a new pack under ``tmp/``, which is
fsynced and renamed into ``packs/``, and only then is the old pack deleted.
A pack with no live blob is deleted. So at every moment each blob a snapshot
names is in some pack on disk; a crash between the two steps leaves a blob
in two packs, which the index tolerates and the next run cleans up.

Not safe against another process writing the store at the same time (the
store's contract is one writer at a time): a capture running elsewhere could
have put blobs that its snapshot does not name yet. Within one process the
store's lock is held for each pack's rewrite, so reads and writes of other
threads interleave between packs.

:func:`sweep` is the mechanism, shared with the server's garbage collection,
which decides liveness from blob ownership instead of snapshots.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Set
from dataclasses import asdict, dataclass
from typing import Any

from snapkit.store.local import LocalStore

__all__ = ["GcReport", "collect_garbage", "live_blobs", "sweep"]

log = logging.getLogger(__name__)

#: Given the ids of one pack, return those that must be kept.
Keep = Callable[[Set[str]], Set[str]]


@dataclass
class GcReport:
    """What one garbage collection did (or, on a dry run, would do).

    ``bytes_freed`` is the difference in pack file sizes; on a dry run it is
    the stored size of the blob copies that would go, a slight underestimate
    (pack indexes and headers shrink too).
    """

    dry_run: bool
    snapshots: int = 0
    packs_before: int = 0
    packs_rewritten: int = 0
    packs_deleted: int = 0
    blobs_kept: int = 0
    blobs_removed: int = 0
    bytes_freed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def live_blobs(store: LocalStore) -> tuple[int, set[str]]:
    """Return the number of snapshots and every blob id they name."""
    infos = store.snapshots()
    live: set[str] = set()
    for info in infos:
        live |= store.snapshot(info.id).blob_ids()
    return len(infos), live


def collect_garbage(store: LocalStore, *, dry_run: bool = False) -> GcReport:
    """Drop every blob of ``store`` that no snapshot names.

    Blobs put but not yet flushed are flushed first, and are dropped like
    any other unreferenced blob: do not run this while a capture into the
    same store is under way. ``dry_run`` reports without changing anything.
    """
    store.flush()
    count, live = live_blobs(store)
    report = sweep(store, lambda ids: ids & live, dry_run=dry_run)
    report.snapshots = count
    return report


def sweep(
    store: LocalStore,
    keep: Keep,
    *,
    dry_run: bool = False,
    skip: Set[str] = frozenset(),
) -> GcReport:
    """Rewrite or delete every pack holding a blob that ``keep`` does not keep.

    ``keep`` is asked once per pack, with the store's lock held, right
    before that pack's live blobs are written out; a caller whose liveness
    can change meanwhile (the server) re-checks there. Packs named in
    ``skip`` are left as they are. A blob kept in a pack that stays is not
    copied again, so duplicates left by an earlier crash disappear too.
    """
    report = GcReport(dry_run=dry_run)
    names = store.pack_names()
    report.packs_before = len(names)
    # Blobs that already sit in a pack this run leaves untouched.
    placed: set[str] = set()
    plan: list[str] = []
    for name in names:
        ids = set(store.pack_entries(name))
        if name in skip or keep(ids) >= ids:
            placed |= ids
        else:
            plan.append(name)

    for name in plan:
        with store.exclusive():
            _sweep_pack(store, name, keep, placed, report)
    report.blobs_kept = len(placed)
    log.info(
        "%s: garbage collection%s: %d of %d packs rewritten, %d deleted, "
        "%d blobs removed, %d bytes freed",
        store.where,
        " (dry run)" if dry_run else "",
        report.packs_rewritten,
        report.packs_before,
        report.packs_deleted,
        report.blobs_removed,
        report.bytes_freed,
    )
    return report


def _sweep_pack(
    store: LocalStore, name: str, keep: Keep, placed: set[str], report: GcReport
) -> None:
    entries = store.pack_entries(name)
    ids = set(entries)
    carry = set(keep(ids)) & ids
    moved = sorted(carry - placed)
    gone = ids - carry
    # A kept blob already placed elsewhere is a duplicate copy going away.
    dropped_copies = len(ids) - len(moved)
    report.blobs_removed += len(gone)
    if report.dry_run:
        report.bytes_freed += sum(
            e.stored_size for bid, e in entries.items() if bid not in moved
        )
        placed.update(moved)
        _count(report, moved)
        return

    before = store.pack_size(name)
    # Durable copies of the live blobs first, the deletion second.
    # Every copy is checked against its id as it is written: a damaged live
    # blob stops the run here, with the old pack still in place.
    new = store.write_pack(store.get_raw(bid) for bid in moved)
    after = store.pack_size(new) if new is not None else 0
    store.drop_pack(name)
    placed.update(moved)
    report.bytes_freed += before - after
    _count(report, moved)
    log.debug(
        "%s: pack %s: %d blobs moved to %s, %d copies dropped",
        store.where,
        name[:12],
        len(moved),
        new[:12] if new else "nothing",
        dropped_copies,
    )


def _count(report: GcReport, moved: list[str]) -> None:
    if moved:
        report.packs_rewritten += 1
    else:
        report.packs_deleted += 1
