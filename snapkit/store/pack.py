"""The pack layout, shared by ``.snap`` archives and local store pack files.

::

    header   16 bytes   magic b"SNAPKIT\\0", u16 format version, u8 kind, 5 zero bytes
    records  ...        blob frames and manifest frames, back to back, no gaps
    index    n bytes    msgpack: {"blobs": [entry...], "snapshots": [entry...]}
    footer   56 bytes   u64 index offset, u64 index length, 32-byte SHA-256 of the
                        index bytes, magic b"SNAPEND\\0"

An entry is ``[id (hex str), offset, stored length, raw length, codec]``. All
integers are big-endian. Records must tile the space between header and index
exactly, in the order of their offsets, so every byte of a pack is covered by
a check: the header by its magic and zeros, each record by its id, the index
by the footer's hash, the footer by its magic and the hash.

A reader validates the header, footer and index when it opens a pack and
verifies each record when it decodes it; see ``docs/design.md``.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import threading
from dataclasses import dataclass
from typing import Any, BinaryIO

from snapkit.errors import FormatError, IntegrityError, NotFoundError
from snapkit.store import codec, serial
from snapkit.store.codec import Codec

__all__ = [
    "FOOTER_SIZE",
    "HEADER_SIZE",
    "KIND_ARCHIVE",
    "KIND_PACK",
    "Entry",
    "PackReader",
    "PackWriter",
]

MAGIC = b"SNAPKIT\x00"
END_MAGIC = b"SNAPEND\x00"
FORMAT_VERSION = 1
KIND_ARCHIVE = 1
KIND_PACK = 2
_KIND_NAMES = {KIND_ARCHIVE: "archive", KIND_PACK: "pack"}

_HEADER = struct.Struct(">8sHB5s")
_FOOTER = struct.Struct(">QQ32s8s")
HEADER_SIZE = _HEADER.size
FOOTER_SIZE = _FOOTER.size
#: Ceiling on an index: the msgpack document ceiling, checked against the
#: footer before the index is read (about 5 million entries of ~100 bytes).
MAX_INDEX = serial.MAX_DOCUMENT
#: Bytes appended to a pack between two background syncs (see _Writeback).
WRITEBACK_EVERY = 32 * 1024 * 1024


@dataclass(frozen=True)
class Entry:
    """Where one record lives inside a pack."""

    id: str
    offset: int
    stored_size: int
    raw_size: int
    codec: Codec

    def wire(self) -> list[Any]:
        return [self.id, self.offset, self.stored_size, self.raw_size, int(self.codec)]


def new_file_mode() -> int:
    """The mode a plain ``open()`` would give a new file under the current umask.

    ``mkstemp`` creates files 0600; an archive or pack is a normal file and
    should get the permissions the user's umask asks for.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    # Not Linux: read the umask by setting it (briefly process-wide).
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory so a rename inside it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Writeback:
    """Starts writing a growing file's bytes to disk while more are appended.

    Every :data:`WRITEBACK_EVERY` bytes, a short-lived thread runs
    ``fdatasync`` on a duplicate of the file's descriptor (the duplicate
    keeps it valid even if the owner closes the file meanwhile). The final
    ``fsync`` of the caller then waits only for the tail. A failure of a
    background sync is raised by :meth:`wait`: Linux reports a writeback
    error to one sync call only, so it must not be lost here.
    """

    def __init__(self, fileobj: BinaryIO) -> None:
        self._file = fileobj
        self._unsynced = 0
        self._thread: threading.Thread | None = None
        self._error: OSError | None = None
        #: Background syncs started so far.
        self.started = 0

    def wrote(self, size: int) -> None:
        self._unsynced += size
        if self._unsynced < WRITEBACK_EVERY:
            return
        if self._thread is not None and self._thread.is_alive():
            return
        self._file.flush()
        self._unsynced = 0
        self.started += 1
        fd = os.dup(self._file.fileno())
        self._thread = threading.Thread(
            target=self._sync, args=(fd,), name="snapkit-writeback", daemon=True
        )
        self._thread.start()

    def _sync(self, fd: int) -> None:
        try:
            os.fdatasync(fd)
        except OSError as exc:
            self._error = exc
        finally:
            os.close(fd)

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


class PackWriter:
    """Appends records to an open binary file and closes it with an index.

    The caller owns the file: it creates it under a temporary name, and after
    :meth:`finish` fsyncs and renames it. Not thread-safe; callers lock.
    With ``writeback=True`` (a file the caller will fsync), written bytes go
    to disk in the background as the pack grows; :meth:`finish` waits for
    that and raises its error, if any.
    """

    def __init__(self, fileobj: BinaryIO, kind: int, writeback: bool = False) -> None:
        self._file = fileobj
        self._writeback = _Writeback(fileobj) if writeback else None
        self._file.write(_HEADER.pack(MAGIC, FORMAT_VERSION, kind, b"\x00" * 5))
        self.offset = HEADER_SIZE
        self.blobs: dict[str, Entry] = {}
        self.snapshots: dict[str, Entry] = {}

    def _append(
        self, blob_id: str, kind: Codec, raw_size: int, data: bytes | memoryview
    ) -> Entry:
        entry = Entry(blob_id, self.offset, len(data), raw_size, kind)
        self._file.write(data)
        self.offset += len(data)
        if self._writeback is not None:
            self._writeback.wrote(len(data))
        return entry

    @property
    def background_syncs(self) -> int:
        """How many background syncs this writer has started (0 without
        ``writeback``)."""
        return self._writeback.started if self._writeback is not None else 0

    def add_blob(
        self, blob_id: str, kind: Codec, raw_size: int, data: bytes | memoryview
    ) -> Entry:
        """Append a blob frame unless it is already in this pack."""
        entry = self.blobs.get(blob_id)
        if entry is None:
            entry = self.blobs[blob_id] = self._append(blob_id, kind, raw_size, data)
        return entry

    def add_manifest(self, snapshot_id: str, manifest: bytes) -> Entry:
        """Append a manifest (compressed like a blob) unless already present."""
        entry = self.snapshots.get(snapshot_id)
        if entry is None:
            kind, data = codec.encode(manifest)
            entry = self._append(snapshot_id, kind, len(manifest), data)
            self.snapshots[snapshot_id] = entry
        return entry

    def finish(self) -> int:
        """Write index and footer; flush. Return the pack's total size."""
        index = serial.pack(
            {
                "blobs": [e.wire() for e in self.blobs.values()],
                "snapshots": [e.wire() for e in self.snapshots.values()],
            }
        )
        self._file.write(index)
        self._file.write(
            _FOOTER.pack(
                self.offset, len(index), hashlib.sha256(index).digest(), END_MAGIC
            )
        )
        self._file.flush()
        if self._writeback is not None:
            self._writeback.wait()
        return self.offset + len(index) + FOOTER_SIZE

    def read(self, entry: Entry) -> bytes:
        """Read back a record written earlier (the file must be open for reading)."""
        self._file.flush()
        return os.pread(self._file.fileno(), entry.stored_size, entry.offset)


class PackReader:
    """Random access to the records of one finished pack or archive.

    Opening checks the header, the footer, the index hash and the index's
    shape (ids, bounds, exact tiling). :meth:`read` returns the stored bytes
    of a record; the caller decodes and verifies them.
    """

    def __init__(self, path: str | os.PathLike[str], kind: int, where: str) -> None:
        self.path = os.fspath(path)
        self.where = where
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError as exc:
            raise NotFoundError(
                f"{where} does not exist; check the path or create it with "
                "`snapkit create`"
            ) from exc
        except IsADirectoryError as exc:
            raise FormatError(
                f"{where} is a directory, not a snapkit {_KIND_NAMES[kind]}"
            ) from exc
        self._lock = threading.Lock()
        try:
            # os.open succeeds on a directory on Linux; only pread fails.
            if not stat.S_ISREG(os.fstat(self._fd).st_mode):
                raise FormatError(
                    f"{where} is not a regular file, so not a snapkit "
                    f"{_KIND_NAMES[kind]}; check the path"
                )
            self.blobs, self.snapshots = self._open(kind)
        except BaseException:
            os.close(self._fd)
            raise

    def _fail(self, what: str) -> FormatError:
        return FormatError(
            f"{self.where}: {what}; the file is damaged, truncated or not a "
            "snapkit file. Run `snapkit verify` on it, and restore it from "
            "another copy if that fails too"
        )

    def _open(self, kind: int) -> tuple[dict[str, Entry], dict[str, Entry]]:
        size = os.fstat(self._fd).st_size
        if size < HEADER_SIZE + FOOTER_SIZE:
            raise self._fail(f"only {size} bytes, too short for a header and footer")
        magic, version, got_kind, zeros = _HEADER.unpack(
            os.pread(self._fd, HEADER_SIZE, 0)
        )
        if magic != MAGIC:
            raise self._fail(f"bad magic {magic!r}")
        if version != FORMAT_VERSION:
            raise FormatError(
                f"{self.where}: format version {version} is not supported (this "
                f"snapkit reads version {FORMAT_VERSION}); upgrade snapkit"
            )
        if got_kind != kind or zeros != b"\x00" * 5:
            raise self._fail(
                f"header says kind {got_kind}, expected {kind} "
                f"({_KIND_NAMES.get(kind)}) with zero reserved bytes"
            )
        footer = os.pread(self._fd, FOOTER_SIZE, size - FOOTER_SIZE)
        index_at, index_len, digest, end = _FOOTER.unpack(footer)
        if end != END_MAGIC:
            raise self._fail("bad end magic (truncated?)")
        if index_len > MAX_INDEX or index_at + index_len != size - FOOTER_SIZE:
            raise self._fail(
                f"footer points at an index outside the file ({index_at}+{index_len})"
            )
        if index_at < HEADER_SIZE:
            raise self._fail(f"index offset {index_at} inside the header")
        index = os.pread(self._fd, index_len, index_at)
        if len(index) != index_len or hashlib.sha256(index).digest() != digest:
            raise self._fail("index checksum mismatch")
        doc = serial.unpack(index, f"{self.where}: index", max_size=MAX_INDEX)
        if not isinstance(doc, dict) or set(doc) != {"blobs", "snapshots"}:
            raise self._fail("index is not a map of blobs and snapshots")
        blobs = self._entries(doc["blobs"], "blobs")
        snapshots = self._entries(doc["snapshots"], "snapshots")
        self._check_tiling([*blobs.values(), *snapshots.values()], index_at)
        return blobs, snapshots

    def _entries(self, items: Any, what: str) -> dict[str, Entry]:
        if not isinstance(items, list):
            raise self._fail(f"index {what} is not a list")
        out: dict[str, Entry] = {}
        for i, item in enumerate(items):
            ok = (
                isinstance(item, list)
                and len(item) == 5
                and isinstance(item[0], str)
                and len(item[0]) == 64
                and all(c in "0123456789abcdef" for c in item[0])
                and all(type(x) is int and x >= 0 for x in item[1:])
                and item[4] in (Codec.RAW, Codec.ZSTD)
            )
            if not ok:
                raise self._fail(f"index {what}[{i}] is malformed: {str(item)[:120]}")
            if item[0] in out:
                raise self._fail(f"index {what} lists {item[0]} twice")
            out[item[0]] = Entry(item[0], item[1], item[2], item[3], Codec(item[4]))
        return out

    def _check_tiling(self, entries: list[Entry], index_at: int) -> None:
        at = HEADER_SIZE
        for e in sorted(entries, key=lambda e: e.offset):
            if e.offset != at:
                raise self._fail(
                    f"record {e.id} starts at {e.offset}, expected {at} "
                    "(records must tile the file)"
                )
            at += e.stored_size
        if at != index_at:
            raise self._fail(f"records end at {at}, index starts at {index_at}")

    def read(self, entry: Entry) -> bytes:
        data = os.pread(self._fd, entry.stored_size, entry.offset)
        if len(data) != entry.stored_size:
            raise IntegrityError(
                f"{self.where}: blob {entry.id} is cut short "
                f"({len(data)} of {entry.stored_size} bytes); run `snapkit verify`"
            )
        return data

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
