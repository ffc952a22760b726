"""Copy one snapshot between repositories: export, import, push and pull.

Only the blobs the destination lacks move, as the compressed bytes they are
stored as (never recompressed); the destination verifies each one as it
arrives, and the manifest is added last, so the snapshot appears there only
when everything it names is durable. Running the same copy again after a
crash sends only what is still missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from snapkit.store.repository import Repository, StoredBlob

__all__ = ["CopyStats", "copy"]

log = logging.getLogger(__name__)

#: How many blobs are read ahead of the one being written.
READ_AHEAD = 8


@dataclass
class CopyStats:
    """What one copy did."""

    snapshot_id: str
    blobs_total: int = 0
    blobs_sent: int = 0
    bytes_sent: int = 0
    bytes_total_raw: int = 0


Progress = Callable[[int, int], None]


def _read_ahead(src: Repository, ids: list[str]) -> Iterator[StoredBlob]:
    if not ids:
        return
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="snapkit-copy") as pool:
        pending: list[Future[StoredBlob]] = []
        it = iter(ids)
        for bid in it:
            pending.append(pool.submit(src.get_raw, bid))
            if len(pending) >= READ_AHEAD:
                break
        for bid in it:
            yield pending.pop(0).result()
            pending.append(pool.submit(src.get_raw, bid))
        for fut in pending:
            yield fut.result()


def copy(
    src: Repository,
    dst: Repository,
    snapshot_id: str,
    progress: Progress | None = None,
) -> CopyStats:
    """Copy snapshot ``snapshot_id`` (full id or prefix) from ``src`` to ``dst``.

    ``progress`` is called with (bytes sent so far, bytes to send). Returns
    what was moved. Raises whatever the repositories raise; on failure ``dst``
    holds some blobs but not the snapshot.
    """
    manifest = src.snapshot(snapshot_id)
    full_id = manifest.id
    needed = sorted(manifest.blob_ids())
    lacking = dst.missing(needed)
    to_send = [b for b in needed if b in lacking]
    stats = CopyStats(
        full_id, blobs_total=len(needed), bytes_total_raw=manifest.raw_size
    )
    sizes = src.stored_sizes(to_send)
    total = sum(sizes.values())

    for blob in _read_ahead(src, to_send):
        dst.put_raw(blob)
        stats.blobs_sent += 1
        stats.bytes_sent += blob.stored_size
        if progress is not None:
            progress(stats.bytes_sent, total)
    dst.add_snapshot(manifest)
    log.info(
        "copied snapshot %s from %s to %s: %d of %d blobs sent, %d bytes",
        full_id[:12],
        src.where,
        dst.where,
        stats.blobs_sent,
        stats.blobs_total,
        stats.bytes_sent,
    )
    return stats
