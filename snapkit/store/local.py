"""The local store: a directory repository of pack files.

::

    STORE/
      snapkit-store          msgpack {"format": 1, "kind": "local-store"}
      packs/ab/<name>.pack   pack files (layout of snapkit.store.pack, kind "pack")
      snapshots/<id>         manifest bytes; the file name is their SHA-256
      tmp/                   packs and manifests being written

Blobs are appended to a pack under ``tmp/``; when the pack reaches
:data:`PACK_TARGET` bytes, or on :meth:`LocalStore.flush`, it is finished,
fsynced and renamed into ``packs/``. :meth:`LocalStore.add_snapshot` flushes
first and then writes the manifest the same way, so a snapshot file exists
only when every blob it names is durable. A crash leaves at most stray files
in ``tmp/``, which the next open removes.

One process writes a store at a time (the server is one such process).
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from snapkit.errors import (
    FormatError,
    IntegrityError,
    NotFoundError,
    UsageError,
    os_errors,
)
from snapkit.store import codec, serial
from snapkit.store.pack import KIND_PACK, Entry, PackReader, PackWriter, fsync_dir
from snapkit.store.repository import (
    Repository,
    SnapshotInfo,
    StoredBlob,
    resolve_prefix,
)
from snapkit.workspace.manifest import Manifest

__all__ = ["PACK_TARGET", "LocalStore", "write_durably"]

log = logging.getLogger(__name__)

#: A pack is finished once it holds this many bytes.
PACK_TARGET = 64 * 1024 * 1024
_CONFIG = {"format": 1, "kind": "local-store"}


def write_durably(path: Path, data: bytes, tmp_dir: Path) -> None:
    """Write ``data`` under ``path`` so a crash leaves the old file or the new one.

    ``tmp_dir`` must be on the same filesystem as ``path``. A missing parent
    folder (one level) is created and its own entry made durable first.
    """
    if not path.parent.is_dir():
        path.parent.mkdir(exist_ok=True)
        fsync_dir(path.parent.parent)
    tmp = tmp_dir / f"{path.name}.{secrets.token_hex(4)}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _has_entries(folder: Path) -> bool:
    # A closed iterator, not any(iterdir()): that leaves a scandir handle open.
    with os.scandir(folder) as it:
        return next(it, None) is not None


class LocalStore(Repository):
    """A repository in a directory. Thread-safe within one process."""

    #: put_raw writes a blob into the file before it returns.
    keeps_blob_data = False

    def __init__(self, path: str | os.PathLike[str], create: bool = True) -> None:
        self.root = Path(path)
        self.where = f"local store {self.root}"
        self._lock = threading.RLock()
        self._open_or_create(create)
        self._packs: dict[str, PackReader] = {}
        self._index: dict[str, tuple[PackReader, Entry]] = {}
        # Readers of packs removed by garbage collection stay open until
        # close(), so a read that looked a blob up just before still works.
        self._retired: list[PackReader] = []
        for pack_path in sorted(self.root.glob("packs/*/*.pack")):
            self._load_pack(pack_path)
        self._writer: PackWriter | None = None
        self._tmp: BinaryIO | None = None
        self._tmp_path: Path | None = None
        self._manifests: dict[str, Manifest] = {}

    def _open_or_create(self, create: bool) -> None:
        marker = self.root / "snapkit-store"
        if marker.exists():
            config = serial.unpack(marker.read_bytes(), f"{self.where}: config")
            if config != _CONFIG:
                raise FormatError(
                    f"{self.where}: config {config!r} is not a format this snapkit "
                    "reads; upgrade snapkit"
                )
        elif not create:
            raise NotFoundError(f"{self.where} does not exist; create it first")
        elif self.root.exists() and _has_entries(self.root):
            raise UsageError(
                f"{self.root} is not empty and not a snapkit store; choose an "
                "empty or new folder"
            )
        for sub in ("packs", "snapshots", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        if not marker.exists():
            write_durably(marker, serial.pack(_CONFIG), self.root / "tmp")
        for stray in (self.root / "tmp").iterdir():
            log.warning(
                "%s: removing unfinished %s from an earlier crash",
                self.where,
                stray.name,
            )
            stray.unlink()

    def _load_pack(self, pack_path: Path) -> None:
        reader = PackReader(
            pack_path, KIND_PACK, f"{self.where}: pack {pack_path.name}"
        )
        self._packs[pack_path.name] = reader
        for bid, entry in reader.blobs.items():
            self._index.setdefault(bid, (reader, entry))

    # -- blobs -----------------------------------------------------------

    def missing(self, ids: Iterable[str]) -> set[str]:
        with self._lock:
            pending = self._writer.blobs if self._writer is not None else {}
            return {i for i in ids if i not in self._index and i not in pending}

    def stored_sizes(self, ids: Iterable[str]) -> dict[str, int]:
        with self._lock:
            out = {}
            for i in ids:
                if i in self._index:
                    out[i] = self._index[i][1].stored_size
                elif self._writer is not None and i in self._writer.blobs:
                    out[i] = self._writer.blobs[i].stored_size
            return out

    def put_raw(self, blob: StoredBlob) -> None:
        blob.check(self.where)
        with self._lock, os_errors(f"writing {self.where}"):
            if blob.id in self._index:
                return
            if self._writer is None:
                self._tmp_path = self.root / "tmp" / f"{secrets.token_hex(16)}.pack"
                self._tmp = open(self._tmp_path, "w+b")  # noqa: SIM115 - closed in flush
                self._writer = PackWriter(self._tmp, KIND_PACK, writeback=True)
            self._writer.add_blob(blob.id, blob.codec, blob.raw_size, blob.data)
            if self._writer.offset >= PACK_TARGET:
                self.flush()

    def get_raw(self, blob_id: str) -> StoredBlob:
        with self._lock:
            found = self._index.get(blob_id)
            if (
                found is None
                and self._writer is not None
                and blob_id in self._writer.blobs
            ):
                entry = self._writer.blobs[blob_id]
                data = self._writer.read(entry)
                return StoredBlob(blob_id, entry.codec, entry.raw_size, data)
        if found is None:
            raise NotFoundError(f"{self.where} holds no blob {blob_id}")
        reader, entry = found
        return StoredBlob(blob_id, entry.codec, entry.raw_size, reader.read(entry))

    def flush(self) -> None:
        with self._lock, os_errors(f"writing {self.where}"):
            writer, tmp, tmp_path = self._writer, self._tmp, self._tmp_path
            if writer is None or tmp is None or tmp_path is None:
                return
            self._writer = self._tmp = self._tmp_path = None
            name = self._install(writer, tmp, tmp_path)
            log.debug(
                "%s: wrote pack %s (%d blobs)", self.where, name[:12], len(writer.blobs)
            )

    def _install(self, writer: PackWriter, tmp: BinaryIO, tmp_path: Path) -> str:
        """Finish a pack written under ``tmp/``, make it durable, rename it into
        ``packs/`` and index it. Return its name. The caller holds the lock."""
        writer.finish()
        os.fsync(tmp.fileno())
        tmp.close()
        name = hashlib.sha256(tmp_path.name.encode()).hexdigest() + ".pack"
        final = self.root / "packs" / name[:2] / name
        if not final.parent.is_dir():
            final.parent.mkdir()
            # The new folder's own entry must survive a crash too.
            fsync_dir(final.parent.parent)
        os.replace(tmp_path, final)
        fsync_dir(final.parent)
        self._load_pack(final)
        return name

    # -- packs (for garbage collection) ----------------------------------

    def exclusive(self) -> AbstractContextManager[bool]:
        """The store's lock: hold it to make several pack steps one unit."""
        return self._lock

    def pack_names(self) -> list[str]:
        """The finished packs, by file name, in the order they were indexed."""
        with self._lock:
            return list(self._packs)

    def pack_entries(self, name: str) -> dict[str, Entry]:
        """The blobs of one finished pack; raise NotFoundError for another name."""
        with self._lock:
            reader = self._packs.get(name)
            if reader is None:
                raise NotFoundError(f"{self.where} has no pack {name}")
            return dict(reader.blobs)

    def pack_size(self, name: str) -> int:
        """The size in bytes of one finished pack file."""
        with self._lock:
            return os.stat(self._pack_path(name)).st_size

    def _pack_path(self, name: str) -> Path:
        return self.root / "packs" / name[:2] / name

    def write_pack(self, blobs: Iterable[StoredBlob]) -> str | None:
        """Write ``blobs`` into one new pack, durable and indexed on return.

        Unlike :meth:`put_raw`, a blob is written even if another pack holds
        it already (that is how garbage collection moves live blobs out of a
        pack it is about to delete). Returns the pack's name, or None when
        ``blobs`` is empty. Blobs are checked against their ids first.
        """
        with self._lock:
            tmp_path = self.root / "tmp" / f"{secrets.token_hex(16)}.pack"
            with open(tmp_path, "w+b") as tmp:
                writer = PackWriter(tmp, KIND_PACK, writeback=True)
                try:
                    for blob in blobs:
                        blob.check(self.where)
                        writer.add_blob(blob.id, blob.codec, blob.raw_size, blob.data)
                    if not writer.blobs:
                        tmp.close()
                        tmp_path.unlink()
                        return None
                    return self._install(writer, tmp, tmp_path)
                except BaseException:
                    tmp.close()
                    tmp_path.unlink(missing_ok=True)
                    raise

    def drop_pack(self, name: str) -> None:
        """Delete one finished pack and forget its blobs.

        Blobs the pack shares with other packs stay readable from those. The
        caller must have made every blob it still needs durable elsewhere
        first (:meth:`write_pack`): this is the step that frees the space.
        """
        with self._lock:
            reader = self._packs.pop(name, None)
            if reader is None:
                raise NotFoundError(f"{self.where} has no pack {name}")
            path = self._pack_path(name)
            path.unlink()
            fsync_dir(path.parent)
            self._retired.append(reader)
            self._index = {}
            for other in self._packs.values():
                for bid, entry in other.blobs.items():
                    self._index.setdefault(bid, (other, entry))

    # -- snapshots -------------------------------------------------------

    def _snapshot_ids(self) -> list[str]:
        return sorted(p.name for p in (self.root / "snapshots").iterdir())

    def add_snapshot(self, manifest: Manifest) -> str:
        data = manifest.encode()
        snapshot_id = codec.blob_id(data)
        with self._lock:
            self.flush()
            lacking = self.missing(manifest.blob_ids())
            if lacking:
                shown = ", ".join(sorted(lacking)[:5])
                raise IntegrityError(
                    f"{self.where}: snapshot {manifest.name!r} names {len(lacking)} "
                    f"blob(s) the store does not hold ({shown}); nothing was committed"
                )
            with os_errors(f"writing {self.where}"):
                write_durably(
                    self.root / "snapshots" / snapshot_id, data, self.root / "tmp"
                )
            self._manifests[snapshot_id] = manifest
        log.info(
            "%s: added snapshot %s (%s)", self.where, snapshot_id[:12], manifest.name
        )
        return snapshot_id

    def snapshots(self) -> list[SnapshotInfo]:
        infos = [
            SnapshotInfo.of(self._load_manifest(i), i) for i in self._snapshot_ids()
        ]
        return sorted(infos, key=lambda s: s.created)

    def snapshot(self, snapshot_id: str) -> Manifest:
        full = resolve_prefix(snapshot_id, self._snapshot_ids(), str(self.root))
        return self._load_manifest(full)

    def _load_manifest(self, snapshot_id: str) -> Manifest:
        cached = self._manifests.get(snapshot_id)
        if cached is not None:
            return cached
        where = f"{self.where}: snapshot {snapshot_id}"
        try:
            with open(self.root / "snapshots" / snapshot_id, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > codec.MAX_BLOB_SIZE:
                    raise FormatError(
                        f"{where}: manifest file of {size} bytes is over the "
                        f"{codec.MAX_BLOB_SIZE}-byte ceiling on a manifest; the "
                        "store is damaged. Run `snapkit verify` on it"
                    )
                data = f.read()
        except FileNotFoundError as exc:
            raise NotFoundError(
                f"{where} does not exist; list them with `snapkit ls`"
            ) from exc
        codec.verify(data, snapshot_id, where)
        manifest = Manifest.decode(data, where)
        self._manifests[snapshot_id] = manifest
        return manifest

    def remove_snapshot(self, snapshot_id: str) -> str:
        full = resolve_prefix(snapshot_id, self._snapshot_ids(), str(self.root))
        with self._lock:
            (self.root / "snapshots" / full).unlink()
            fsync_dir(self.root / "snapshots")
            self._manifests.pop(full, None)
        return full

    # -- lifetime --------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self.flush()
            for reader in [*self._packs.values(), *self._retired]:
                reader.close()

    def abort(self) -> None:
        with self._lock:
            if self._tmp is not None and self._tmp_path is not None:
                # Blobs put by an aborted capture are still valid content;
                # keeping them makes the retry cheaper.
                self.flush()
            for reader in [*self._packs.values(), *self._retired]:
                reader.close()

    def verify(self) -> list[str]:
        """Re-read every snapshot and blob; return the problems found."""
        problems: list[str] = []
        for sid in self._snapshot_ids():
            self._manifests.pop(sid, None)
            try:
                lacking = self.missing(self._load_manifest(sid).blob_ids())
                if lacking:
                    problems.append(
                        f"{self.where}: snapshot {sid} lacks {sorted(lacking)[:3]}"
                    )
            except IntegrityError as exc:
                problems.append(str(exc))
        for bid in list(self._index):
            try:
                self.get(bid)
            except IntegrityError as exc:
                problems.append(str(exc))
        return problems
