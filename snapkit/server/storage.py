"""Blob storage for the server: one shared :class:`~snapkit.store.local.LocalStore`.

Content is stored once however many users upload it; who may reach a blob is
recorded separately in :mod:`.metadata`. This module only promises that a blob
handed to :meth:`BlobStorage.put_many` is durable (fsync and rename inside
the store's ``flush``) when the call returns, which is what lets the caller
record ownership afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from snapkit.store.repository import StoredBlob

__all__ = ["BlobStorage"]


class BlobStorage:
    """Thread-safe access to the shared pack store under ``root``.

    Reads go straight to the (thread-safe) store; writes hold a lock so one
    batch is put and flushed as a unit.
    """

    def __init__(self, root: str | Path) -> None:
        # Imported here so `snapkit server adduser` works on a tree without it.
        from snapkit.store.local import LocalStore

        self.root = Path(root)
        self._lock = threading.Lock()
        self._store = LocalStore(self.root, create=True)

    def put_many(self, blobs: Sequence[StoredBlob]) -> dict[str, int]:
        """Store every blob not already held, make all durable, return their sizes.

        The sizes are those of the copies the store holds, which may have been
        uploaded earlier (by anyone) with another compression level.
        """
        with self._lock:
            absent = self._store.missing(blob.id for blob in blobs)
            for blob in blobs:
                if blob.id in absent:
                    self._store.put_raw(blob)
                    absent.discard(blob.id)
            self._store.flush()
            return self._store.stored_sizes(blob.id for blob in blobs)

    def get(self, blob_id: str) -> StoredBlob:
        """Return a stored blob; raise NotFoundError if the store lacks it."""
        return self._store.get_raw(blob_id)

    def close(self) -> None:
        with self._lock:
            self._store.close()
