"""The repository interface: anything that stores blobs and snapshots.

Three implementations share it: the ``.snap`` archive
(:mod:`snapkit.store.archive`), the local store directory
(:mod:`snapkit.store.local`) and the server client
(:mod:`snapkit.remote.client`). Capture writes to a repository; push and pull
are :func:`snapkit.store.copy.copy` between two of them.

Contract every implementation keeps:

* ``put``/``put_raw`` verify the bytes against the id before they count as
  stored (``StoredBlob.check``); ``get`` verifies again on the way out.
  ``get_raw`` returns the bytes as stored without decoding them: whoever
  receives them (another repository's ``put_raw``) verifies them.
* ``add_snapshot`` makes a snapshot visible only once every blob it names is
  durable; it raises :class:`~snapkit.errors.IntegrityError` (or
  :class:`~snapkit.errors.ConflictError` on the server) naming the blobs that
  are missing, and writes nothing.
* ``snapshot``/``remove_snapshot`` accept a full id or a unique prefix of at
  least 4 hex digits and raise :class:`~snapkit.errors.NotFoundError` for an
  unknown one.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType

from snapkit.errors import AmbiguousIdError, NotFoundError, UsageError
from snapkit.store import codec as blobcodec
from snapkit.store.codec import Codec
from snapkit.workspace.manifest import Manifest

__all__ = [
    "Repository",
    "SnapshotInfo",
    "StoredBlob",
    "is_id_prefix",
    "resolve_prefix",
]


@dataclass(frozen=True)
class StoredBlob:
    """A blob as a repository keeps it: already compressed (or raw).

    ``data`` is bytes, or a view whose bytes nothing changes while the blob
    is in use: a blob parsed out of a downloaded body is a slice of that
    body, and between a :class:`~snapkit.store.chunker.BlobWriter` and a
    repository that writes blobs out before ``put_raw`` returns
    (:attr:`Repository.keeps_blob_data` False) a raw blob is a view of the
    writer's input, which spares copying every incompressible chunk.
    """

    id: str
    codec: Codec
    raw_size: int
    data: bytes | memoryview
    #: True only when this process encoded the blob from its bytes, so the id
    #: is known to match; blobs read from a file or the network start False.
    trusted: bool = field(default=False, compare=False, repr=False)

    @property
    def stored_size(self) -> int:
        return len(self.data)

    def decode(self, where: str) -> bytes:
        """Return the uncompressed bytes, checked against the id."""
        out = blobcodec.decode(self.codec, self.data, self.raw_size, where)
        blobcodec.verify(out, self.id, where)
        return out

    @classmethod
    def from_bytes(
        cls,
        data: bytes | memoryview,
        level: int = blobcodec.DEFAULT_LEVEL,
        blob_id: str | None = None,
        copy: bool = True,
    ) -> StoredBlob:
        """Encode ``data``. ``blob_id``, when the caller just hashed ``data``
        itself, saves hashing it twice; never pass an id from elsewhere.
        With ``copy=False`` a raw blob keeps ``data`` itself (see the class
        docstring for when that is safe)."""
        kind, stored = blobcodec.encode_view(data, level, copy=copy)
        bid = blob_id if blob_id is not None else blobcodec.blob_id(data)
        return cls(bid, kind, len(data), stored, trusted=True)

    def check(self, where: str) -> None:
        """Verify an incoming blob against its id unless this process made it."""
        if not self.trusted:
            self.decode(f"{where}: blob {self.id}")


@dataclass(frozen=True)
class SnapshotInfo:
    """What a listing shows of one snapshot, without its full manifest."""

    id: str
    name: str
    created: str
    tags: list[str]
    raw_size: int
    objects: int
    files: int

    @classmethod
    def of(cls, manifest: Manifest, snapshot_id: str | None = None) -> SnapshotInfo:
        return cls(
            id=snapshot_id or manifest.id,
            name=manifest.name,
            created=manifest.created,
            tags=list(manifest.tags),
            raw_size=manifest.raw_size,
            objects=len(manifest.objects),
            files=len(manifest.files),
        )


_ID_PREFIX = re.compile(r"[0-9a-f]{4,64}")


def is_id_prefix(text: str) -> bool:
    """Whether ``text`` can name a snapshot: 4 to 64 hex digits, any case."""
    return _ID_PREFIX.fullmatch(text.lower()) is not None


def resolve_prefix(prefix: str, ids: Iterable[str], where: str) -> str:
    """Return the one id in ``ids`` that starts with ``prefix``."""
    prefix = prefix.strip().lower()
    if not is_id_prefix(prefix):
        raise UsageError(
            f"snapshot id {prefix!r} is not valid; give at least 4 hex digits "
            f"of an id listed by `snapkit ls` or `snapkit show {where}`"
        )
    found = sorted({i for i in ids if i.startswith(prefix)})
    if not found:
        raise NotFoundError(
            f"no snapshot {prefix} in {where}; list them with `snapkit ls`"
        )
    if len(found) > 1:
        shown = ", ".join(i[:12] for i in found[:5])
        raise AmbiguousIdError(
            f"snapshot id {prefix} is ambiguous in {where} (matches {shown}); "
            "give more digits"
        )
    return found[0]


class Repository(abc.ABC):
    """Stores blobs under their ids and snapshots under theirs."""

    #: Human-readable location, used in every error message.
    where: str = "repository"
    #: Whether ``put_raw`` may keep a blob's ``data`` after it returns (a
    #: queue for upload does). A repository that writes the bytes out before
    #: returning sets this False, and BlobWriter then hands it raw chunks as
    #: views of the caller's buffer instead of copies.
    keeps_blob_data: bool = True

    # -- blobs -----------------------------------------------------------

    @abc.abstractmethod
    def missing(self, ids: Iterable[str]) -> set[str]:
        """Return the subset of ``ids`` this repository does not hold."""

    @abc.abstractmethod
    def stored_sizes(self, ids: Iterable[str]) -> dict[str, int]:
        """Return the stored (compressed) size of each id this repository holds."""

    @abc.abstractmethod
    def put_raw(self, blob: StoredBlob) -> None:
        """Store an already-encoded blob after checking it against its id."""

    @abc.abstractmethod
    def get_raw(self, blob_id: str) -> StoredBlob:
        """Return a blob as stored; raise NotFoundError if absent."""

    def put(
        self, data: bytes | memoryview, level: int = blobcodec.DEFAULT_LEVEL
    ) -> StoredBlob:
        """Compress and store ``data``; return the stored blob (its id first)."""
        blob = StoredBlob.from_bytes(data, level)
        if self.missing([blob.id]):
            self.put_raw(blob)
        return blob

    def get(self, blob_id: str) -> bytes:
        """Return the uncompressed, verified bytes of a blob."""
        return self.get_raw(blob_id).decode(f"{self.where}: blob {blob_id}")

    # -- snapshots -------------------------------------------------------

    @abc.abstractmethod
    def add_snapshot(self, manifest: Manifest) -> str:
        """Commit ``manifest`` once all its blobs are durable; return its id."""

    @abc.abstractmethod
    def snapshots(self) -> list[SnapshotInfo]:
        """List the snapshots, oldest first."""

    @abc.abstractmethod
    def snapshot(self, snapshot_id: str) -> Manifest:
        """Return the manifest of a snapshot (full id or unique prefix)."""

    @abc.abstractmethod
    def remove_snapshot(self, snapshot_id: str) -> str:
        """Forget a snapshot (blobs stay until garbage collection); return its id."""

    # -- lifetime --------------------------------------------------------

    def flush(self) -> None:  # noqa: B027 - optional hook, default is a no-op
        """Make every blob put so far durable."""

    def close(self) -> None:  # noqa: B027
        """Finish writing and release resources; safe to call twice."""

    def abort(self) -> None:
        """Drop what was not committed, then close. Used when a capture fails."""
        self.close()

    def __enter__(self) -> Repository:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
