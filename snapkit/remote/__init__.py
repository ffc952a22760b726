"""Talking to a snapkit server: the client and the blob record format.

The client itself lives in :mod:`snapkit.remote.client` (it needs httpx, from
the ``client`` extra). This module holds only what both ends share and needs
nothing beyond the standard library: the record format of blob uploads and
batch downloads, and how a ``since`` time is read (:func:`parse_time`).

A blob body (``application/octet-stream``) is a sequence of records, each::

    [32-byte binary blob id][1-byte codec][8-byte big-endian raw size]
    [8-byte big-endian stored length][stored bytes]

The id is the SHA-256 of the uncompressed bytes, the codec is a
:class:`~snapkit.store.codec.Codec` value, and the stored bytes are exactly
what a repository keeps (a zstd frame or the raw bytes). An empty body holds
no records. A body that ends inside a record is malformed.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from snapkit.errors import FormatError, UsageError
from snapkit.store.codec import MAX_BLOB_SIZE, Codec
from snapkit.store.repository import StoredBlob

if TYPE_CHECKING:
    from snapkit.remote.client import Client

__all__ = [
    "HEADER_SIZE",
    "MAX_RECORD",
    "Client",
    "RecordParser",
    "encode_record",
    "encode_records",
    "iter_records",
    "parse_time",
]

_HEADER = struct.Struct(">32sBQQ")
#: Bytes before each record's stored bytes.
HEADER_SIZE = _HEADER.size
#: The largest record a parser accepts: a blob at the ceiling, stored raw
#: (with the slack a zstd frame of incompressible bytes may need).
MAX_RECORD = HEADER_SIZE + MAX_BLOB_SIZE + 1024


def encode_record(blob: StoredBlob) -> bytes:
    """Return the header of one record followed by its stored bytes."""
    header = _HEADER.pack(
        bytes.fromhex(blob.id), int(blob.codec), blob.raw_size, len(blob.data)
    )
    return header + blob.data


def encode_records(blobs: Iterable[StoredBlob]) -> bytes:
    """Return a whole body holding ``blobs`` in order."""
    return b"".join(encode_record(blob) for blob in blobs)


def _header(
    buf: bytes | bytearray | memoryview, pos: int, index: int, where: str
) -> tuple[str, Codec, int, int]:
    """Read and check the header of record ``index`` at ``pos``: its id,
    codec, raw size and stored length."""
    raw_id, codec, raw_size, stored_len = _HEADER.unpack_from(buf, pos)
    blob_id = raw_id.hex()
    if codec not in (Codec.RAW, Codec.ZSTD):
        raise FormatError(
            f"{where}: record {index} (blob {blob_id}) has unknown "
            f"codec {codec}; expected 0 (raw) or 1 (zstd)"
        )
    if raw_size > MAX_BLOB_SIZE or stored_len > max(raw_size, 64) + 1024:
        raise FormatError(
            f"{where}: record {index} (blob {blob_id}) declares "
            f"{raw_size} raw / {stored_len} stored bytes, over the ceiling"
        )
    return blob_id, Codec(codec), raw_size, stored_len


def _cut_short(where: str, index: int, left: int) -> FormatError:
    return FormatError(
        f"{where}: body ends inside record {index} "
        f"({left} bytes left over); the upload was cut short, send it again"
    )


class RecordParser:
    """Turns a byte stream into blobs as the bytes arrive.

    Feed it chunks of any size; it returns each record once its last byte has
    arrived. It checks the shape of each header (known codec, sizes under
    the blob ceiling, stored bytes no larger than the raw size allows) but
    not the content: the caller verifies each blob against its id.
    """

    def __init__(self, where: str = "blob upload") -> None:
        self.where = where
        self._buf = bytearray()
        self._pos = 0
        self.records = 0
        #: Header plus stored bytes of the first record, once its header
        #: has arrived (what a body holding one large blob may need).
        self.first_record: int | None = None

    def feed(self, chunk: bytes) -> list[StoredBlob]:
        self._buf += chunk
        out: list[StoredBlob] = []
        while True:
            blob = self._next()
            if blob is None:
                break
            out.append(blob)
        # Drop consumed bytes once they are a good share of the buffer.
        if self._pos and self._pos * 2 >= len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        return out

    def close(self) -> None:
        """Raise FormatError if the stream ended inside a record."""
        left = len(self._buf) - self._pos
        if left:
            raise _cut_short(self.where, self.records, left)

    def _next(self) -> StoredBlob | None:
        available = len(self._buf) - self._pos
        if available < HEADER_SIZE:
            return None
        blob_id, codec, raw_size, stored_len = _header(
            self._buf, self._pos, self.records, self.where
        )
        if self.records == 0:
            self.first_record = HEADER_SIZE + stored_len
        if available < HEADER_SIZE + stored_len:
            return None
        start = self._pos + HEADER_SIZE
        # One copy, straight out of the buffer (a bytearray slice would be a
        # second); the view is released at once, so the buffer can grow.
        with memoryview(self._buf) as view:
            data = bytes(view[start : start + stored_len])
        self._pos = start + stored_len
        self.records += 1
        return StoredBlob(blob_id, codec, raw_size, data)


def iter_records(body: bytes, where: str = "blob body") -> Iterator[StoredBlob]:
    """Yield every blob of a complete body.

    Each blob's ``data`` is a view of ``body`` (which is immutable), not a
    copy: a 32 MiB batch download is parsed without moving its bytes.
    """
    view = memoryview(body)
    pos = index = 0
    while pos < len(view):
        left = len(view) - pos
        if left < HEADER_SIZE:
            raise _cut_short(where, index, left)
        blob_id, codec, raw_size, stored_len = _header(view, pos, index, where)
        if left < HEADER_SIZE + stored_len:
            raise _cut_short(where, index, left)
        start = pos + HEADER_SIZE
        yield StoredBlob(blob_id, codec, raw_size, view[start : start + stored_len])
        pos = start + stored_len
        index += 1


_NAKED_OFFSET = re.compile(r"(.*\d) (\d\d(?::?\d\d)?)")


def parse_time(text: str) -> str:
    """Read an ISO 8601 time and return it in UTC as ``%Y-%m-%dT%H:%M:%S.%fZ``.

    Accepts a date (``2026-01-31``, midnight), a time with or without
    seconds and fraction, and an offset (``Z``, ``+01:00``); a time without
    an offset is UTC. An offset whose ``+`` arrived as a space (an unescaped
    query string) is read as ``+``. Raises :class:`~snapkit.errors.UsageError`
    naming the value otherwise. This is the form snapshot times are compared
    in, so the result sorts as the times do.
    """
    value = text.strip()
    naked = _NAKED_OFFSET.fullmatch(value)
    if naked is not None and "T" in value:
        value = f"{naked.group(1)}+{naked.group(2)}"
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        utc = moment.astimezone(timezone.utc).replace(tzinfo=None)
    except (ValueError, OverflowError) as exc:
        raise UsageError(
            f"time {text[:80]!r} is not an ISO 8601 time; give for example "
            "2026-01-31, 2026-01-31T12:00:00Z or 2026-01-31T12:00:00+01:00"
        ) from exc
    return utc.isoformat(timespec="microseconds") + "Z"


def __getattr__(name: str) -> Any:
    # `from snapkit.remote import Client` without importing httpx eagerly.
    if name == "Client":
        from snapkit.remote.client import Client

        return Client
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
