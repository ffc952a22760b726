"""The ``.snap`` archive: one portable, self-verifying file of snapshots.

An archive uses the pack layout of :mod:`snapkit.store.pack` with kind
``archive``: blob frames, then manifest frames, then the index and footer.

Writing never touches the final name until the end: records go to a
temporary file beside it, which :meth:`Archive.close` finishes with the index,
fsyncs, renames over the final name and fsyncs the directory. An exception
inside ``with Archive(...)`` (or :meth:`Archive.abort`) deletes the temporary
file, so a crash or a full disk leaves either the old archive or the new one.

Modes: ``"r"`` reads; ``"w"`` starts a new archive (replacing any old one at
close); ``"a"`` keeps the snapshots of an existing archive (if any) and adds
to them. In ``"a"`` mode the old records still named by a kept snapshot are
copied into the new file at close, each verified on the way.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, Literal

from snapkit.errors import IntegrityError, NotFoundError, UsageError, os_errors
from snapkit.store import codec
from snapkit.store.pack import (
    KIND_ARCHIVE,
    Entry,
    PackReader,
    PackWriter,
    fsync_dir,
    new_file_mode,
)
from snapkit.store.repository import (
    Repository,
    SnapshotInfo,
    StoredBlob,
    resolve_prefix,
)
from snapkit.workspace.manifest import Manifest

__all__ = ["Archive"]

log = logging.getLogger(__name__)


class Archive(Repository):
    """A ``.snap`` file as a repository. Thread-safe for concurrent reads and puts."""

    #: put_raw writes a blob into the file before it returns.
    keeps_blob_data = False

    def __init__(
        self, path: str | os.PathLike[str], mode: Literal["r", "w", "a"] = "r"
    ) -> None:
        if mode not in ("r", "w", "a"):
            raise UsageError(f"archive mode {mode!r} is not one of 'r', 'w', 'a'")
        self.path = Path(path)
        self.where = f"archive {self.path}"
        self.mode = mode
        self._lock = threading.RLock()
        self._old: PackReader | None = None
        self._removed: set[str] = set()
        self._manifests: dict[str, Manifest] = {}
        self._writer: PackWriter | None = None
        self._tmp: BinaryIO | None = None
        self._closed = False

        if mode == "r" or (mode == "a" and self.path.exists()):
            self._old = PackReader(self.path, KIND_ARCHIVE, self.where)
        if mode != "r":
            self._start_writing()

    def _start_writing(self) -> None:
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise NotFoundError(
                f"cannot write {self.path}: folder {parent} does not exist; "
                "create it first"
            )
        with os_errors(f"creating {self.where}"):
            fd, tmp_name = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".tmp", dir=parent
            )
        os.fchmod(fd, new_file_mode())
        self._tmp = os.fdopen(fd, "w+b")
        self._tmp_name = tmp_name
        self._writer = PackWriter(self._tmp, KIND_ARCHIVE, writeback=True)

    # -- blobs -----------------------------------------------------------

    def _entry(self, blob_id: str) -> tuple[Entry, bool] | None:
        """Return (entry, in the new file) for a blob this archive holds."""
        if self._writer is not None and blob_id in self._writer.blobs:
            return self._writer.blobs[blob_id], True
        if self._old is not None and blob_id in self._old.blobs:
            return self._old.blobs[blob_id], False
        return None

    def missing(self, ids: Iterable[str]) -> set[str]:
        with self._lock:
            return {i for i in ids if self._entry(i) is None}

    def stored_sizes(self, ids: Iterable[str]) -> dict[str, int]:
        with self._lock:
            out = {}
            for i in ids:
                found = self._entry(i)
                if found is not None:
                    out[i] = found[0].stored_size
            return out

    def put_raw(self, blob: StoredBlob) -> None:
        writer = self._require_writer()
        blob.check(self.where)
        with self._lock, os_errors(f"writing {self.where}"):
            if self._entry(blob.id) is None:
                writer.add_blob(blob.id, blob.codec, blob.raw_size, blob.data)

    def get_raw(self, blob_id: str) -> StoredBlob:
        with self._lock:
            found = self._entry(blob_id)
            if found is None:
                raise NotFoundError(
                    f"{self.where} holds no blob {blob_id}; the archive is "
                    "incomplete. Run `snapkit verify` on it"
                )
            entry, fresh = found
            if fresh:
                assert self._writer is not None
                data = self._writer.read(entry)
        if not fresh:
            assert self._old is not None
            data = self._old.read(entry)
        return StoredBlob(entry.id, entry.codec, entry.raw_size, data)

    # -- snapshots -------------------------------------------------------

    def _snapshot_ids(self) -> list[str]:
        ids: list[str] = []
        if self._old is not None:
            ids += [i for i in self._old.snapshots if i not in self._removed]
        if self._writer is not None:
            ids += [i for i in self._writer.snapshots if i not in ids]
        return ids

    def add_snapshot(self, manifest: Manifest) -> str:
        writer = self._require_writer()
        data = manifest.encode()
        snapshot_id = codec.blob_id(data)
        with self._lock:
            lacking = self.missing(manifest.blob_ids())
            if lacking:
                shown = ", ".join(sorted(lacking)[:5])
                raise IntegrityError(
                    f"{self.where}: snapshot {manifest.name!r} names {len(lacking)} "
                    f"blob(s) the archive does not hold ({shown}); nothing was "
                    "committed. Capture again, or copy the blobs first"
                )
            self._removed.discard(snapshot_id)
            writer.add_manifest(snapshot_id, data)
            self._manifests[snapshot_id] = manifest
        log.info(
            "%s: added snapshot %s (%s)", self.where, snapshot_id[:12], manifest.name
        )
        return snapshot_id

    def snapshots(self) -> list[SnapshotInfo]:
        with self._lock:
            ids = self._snapshot_ids()
        infos = [SnapshotInfo.of(self._load_manifest(i), i) for i in ids]
        return sorted(infos, key=lambda s: s.created)

    def snapshot(self, snapshot_id: str) -> Manifest:
        with self._lock:
            full = resolve_prefix(snapshot_id, self._snapshot_ids(), str(self.path))
        return self._load_manifest(full)

    def _load_manifest(self, snapshot_id: str) -> Manifest:
        cached = self._manifests.get(snapshot_id)
        if cached is not None:
            return cached
        with self._lock:
            if self._writer is not None and snapshot_id in self._writer.snapshots:
                entry = self._writer.snapshots[snapshot_id]
                data = self._writer.read(entry)
            else:
                assert self._old is not None
                entry = self._old.snapshots[snapshot_id]
                data = self._old.read(entry)
        where = f"{self.where}: manifest {snapshot_id}"
        raw = codec.decode(entry.codec, data, entry.raw_size, where)
        codec.verify(raw, snapshot_id, where)
        manifest = Manifest.decode(raw, where)
        self._manifests[snapshot_id] = manifest
        return manifest

    def remove_snapshot(self, snapshot_id: str) -> str:
        self._require_writer()
        with self._lock:
            full = resolve_prefix(snapshot_id, self._snapshot_ids(), str(self.path))
            self._removed.add(full)
            if self._writer is not None:
                self._writer.snapshots.pop(full, None)
        return full

    # -- lifetime --------------------------------------------------------

    def _require_writer(self) -> PackWriter:
        if self._writer is None or self._closed:
            raise UsageError(
                f"{self.where} is open for reading; open it with mode 'a' to add "
                "or remove snapshots"
            )
        return self._writer

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._writer is not None:
                    with os_errors(f"writing {self.where}"):
                        self._finish()
            except BaseException:
                self._discard()
                raise
            finally:
                if self._old is not None:
                    self._old.close()

    def abort(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._discard()
            if self._old is not None:
                self._old.close()

    def _discard(self) -> None:
        if self._tmp is not None:
            self._tmp.close()
            self._tmp = None
            Path(self._tmp_name).unlink(missing_ok=True)

    def _finish(self) -> None:
        writer, tmp = self._writer, self._tmp
        assert writer is not None and tmp is not None
        if self._old is not None:
            self._carry_over(writer)
        # Blobs no kept snapshot names were put but never committed: an
        # archive holds only what its snapshots need.
        needed: set[str] = set()
        for sid in writer.snapshots:
            needed |= self._load_manifest(sid).blob_ids()
        if set(writer.blobs) - needed:
            self._rewrite_without_orphans(needed)
            writer, tmp = self._writer, self._tmp
            assert writer is not None and tmp is not None
        writer.finish()
        os.fsync(tmp.fileno())
        tmp.close()
        self._tmp = None
        os.replace(self._tmp_name, self.path)
        fsync_dir(self.path.parent if str(self.path.parent) else ".")
        log.info(
            "wrote %s (%d snapshots, %d blobs)",
            self.path,
            len(writer.snapshots),
            len(writer.blobs),
        )

    def _carry_over(self, writer: PackWriter) -> None:
        old = self._old
        assert old is not None
        for sid in old.snapshots:
            if sid in self._removed or sid in writer.snapshots:
                continue
            manifest = self._load_manifest(sid)
            for bid in sorted(manifest.blob_ids()):
                if bid in writer.blobs:
                    continue
                entry = old.blobs.get(bid)
                if entry is None:
                    raise IntegrityError(
                        f"{self.where}: snapshot {sid} names blob {bid}, which the "
                        "archive does not hold; run `snapkit verify` on it"
                    )
                blob = StoredBlob(bid, entry.codec, entry.raw_size, old.read(entry))
                blob.check(self.where)
                writer.add_blob(bid, blob.codec, blob.raw_size, blob.data)
            writer.add_manifest(sid, manifest.encode())

    def _rewrite_without_orphans(self, needed: set[str]) -> None:
        old_writer, old_tmp, old_name = self._writer, self._tmp, self._tmp_name
        assert old_writer is not None and old_tmp is not None
        self._start_writing()
        new = self._writer
        assert new is not None
        for bid, entry in old_writer.blobs.items():
            if bid in needed:
                new.add_blob(bid, entry.codec, entry.raw_size, old_writer.read(entry))
        for sid, entry in old_writer.snapshots.items():
            raw = codec.decode(
                entry.codec,
                old_writer.read(entry),
                entry.raw_size,
                f"{self.where}: snapshot {sid}",
            )
            new.add_manifest(sid, raw)
        old_tmp.close()
        Path(old_name).unlink(missing_ok=True)

    def verify(self) -> list[str]:
        """Re-read and check every blob and manifest; return problems found.

        An empty list means every byte checked out.
        """
        problems: list[str] = []
        ids = [*self._snapshot_ids()]
        for sid in ids:
            try:
                self._manifests.pop(sid, None)
                self._load_manifest(sid)
            except IntegrityError as exc:
                problems.append(str(exc))
        held: dict[str, None] = {}  # ordered, and O(1) membership
        if self._old is not None:
            held.update(dict.fromkeys(self._old.blobs))
        if self._writer is not None:
            held.update(dict.fromkeys(self._writer.blobs))
        for bid in held:
            try:
                self.get(bid)
            except IntegrityError as exc:
                problems.append(str(exc))
        return problems
