"""Blob frames: the one place snapkit talks to zstandard.

A blob is stored either as one zstandard frame that records its content size
(codec ``ZSTD``) or as its raw bytes (codec ``RAW``) when compression would save
less than :data:`MIN_SAVING`. Compression options are fixed so the same input
at the same level always yields the same frame.

Decoding checks the frame header before allocating anything: the declared
content size must equal the size the index promised and stay under
:data:`MAX_BLOB_SIZE`, the window must stay under :data:`MAX_WINDOW`, and no
byte may follow the frame.
"""

from __future__ import annotations

import enum
import hashlib
import threading

import zstandard

from snapkit.errors import FormatError, IntegrityError, UsageError

__all__ = [
    "DEFAULT_LEVEL",
    "MAX_BLOB_SIZE",
    "MAX_WINDOW",
    "MIN_SAVING",
    "Codec",
    "blob_id",
    "decode",
    "encode",
    "encode_view",
    "verify",
]

DEFAULT_LEVEL = 3
#: Compression must save at least this share of the bytes to be kept.
MIN_SAVING = 0.03
#: Ceiling on one blob's uncompressed size (chunks are at most 4 MiB; manifests
#: of very large workspaces are the biggest single records).
MAX_BLOB_SIZE = 256 * 1024 * 1024
#: Ceiling on the zstd window a frame may ask for (level 19 uses 8 MiB).
MAX_WINDOW = 1 << 27


class Codec(enum.IntEnum):
    """How a blob's bytes are stored. The values are part of the format."""

    RAW = 0
    ZSTD = 1


_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    # Compressors are not thread-safe; keep one per thread and level.
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "c", None)
    if cache is None:
        cache = _local.c = {}
    comp = cache.get(level)
    if comp is None:
        comp = cache[level] = zstandard.ZstdCompressor(
            level=level,
            write_content_size=True,
            write_checksum=False,
            write_dict_id=False,
            threads=0,
        )
    return comp


def _decompressor() -> zstandard.ZstdDecompressor:
    dec: zstandard.ZstdDecompressor | None = getattr(_local, "d", None)
    if dec is None:
        dec = _local.d = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW)
    return dec


def blob_id(data: bytes | memoryview) -> str:
    """Return the id of ``data``: the hex SHA-256 of its uncompressed bytes."""
    return hashlib.sha256(data).hexdigest()


def check_level(level: int) -> int:
    """Return ``level`` if zstandard accepts it, else raise :class:`UsageError`."""
    if not isinstance(level, int) or not 1 <= level <= 22:
        raise UsageError(
            f"compression level {level!r} is out of range; "
            "use an integer from 1 (fastest) to 22 (smallest), default 3"
        )
    return level


def encode(data: bytes | memoryview, level: int = DEFAULT_LEVEL) -> tuple[Codec, bytes]:
    """Compress ``data`` into a frame, or keep it raw when that does not pay."""
    kind, stored = encode_view(data, level, copy=True)
    assert isinstance(stored, bytes)
    return kind, stored


def encode_view(
    data: bytes | memoryview, level: int = DEFAULT_LEVEL, *, copy: bool
) -> tuple[Codec, bytes | memoryview]:
    """Like :func:`encode`; with ``copy=False`` raw bytes are returned as
    ``data`` itself rather than a copy, for a caller that writes them out
    before ``data`` can change."""
    size = len(data)
    if size > MAX_BLOB_SIZE:
        raise UsageError(
            f"blob of {size} bytes is over the {MAX_BLOB_SIZE}-byte ceiling; "
            "cut large streams with snapkit.store.chunker first"
        )
    if size >= 64:
        frame = _compressor(level).compress(data)
        if len(frame) <= size * (1 - MIN_SAVING):
            return Codec.ZSTD, frame
    return Codec.RAW, bytes(data) if copy or isinstance(data, bytes) else data


def decode(codec: int, stored: bytes | memoryview, raw_size: int, where: str) -> bytes:
    """Return the uncompressed bytes of a stored blob.

    ``raw_size`` is the size the index promised; ``where`` names the blob for
    error messages (archive and id). Raises :class:`FormatError` for a frame
    that breaks a ceiling or carries trailing bytes, and
    :class:`IntegrityError` when the output does not have the promised size.
    It does not check the hash: see :func:`verify`.
    """
    if not 0 <= raw_size <= MAX_BLOB_SIZE:
        raise FormatError(
            f"{where}: declared size {raw_size} is over the "
            f"{MAX_BLOB_SIZE}-byte ceiling; the index is damaged or hostile"
        )
    if codec == Codec.RAW:
        if len(stored) != raw_size:
            raise IntegrityError(
                f"{where}: raw blob holds {len(stored)} bytes, index says {raw_size}"
            )
        return bytes(stored)
    if codec != Codec.ZSTD:
        raise FormatError(f"{where}: unknown codec {codec}; expected 0 (raw) or 1")
    try:
        params = zstandard.get_frame_parameters(stored)
    except zstandard.ZstdError as exc:
        raise FormatError(f"{where}: not a zstandard frame ({exc})") from exc
    if params.content_size != raw_size:
        raise FormatError(
            f"{where}: frame declares {params.content_size} bytes, "
            f"index says {raw_size}"
        )
    if params.window_size > MAX_WINDOW:
        raise FormatError(
            f"{where}: frame asks for a {params.window_size}-byte window, "
            f"over the {MAX_WINDOW}-byte ceiling"
        )
    try:
        # One shot: the output buffer is allocated once, at the size checked
        # above, and any byte after the frame is an error.
        out = _decompressor().decompress(
            stored, max_output_size=raw_size, allow_extra_data=False
        )
    except zstandard.ZstdError as exc:
        if "unused data" in str(exc):
            raise FormatError(
                f"{where}: extra bytes follow the zstandard frame; "
                "the record is damaged"
            ) from exc
        raise IntegrityError(f"{where}: frame does not decompress ({exc})") from exc
    if len(out) != raw_size:
        raise FormatError(
            f"{where}: frame is truncated (got {len(out)} of {raw_size} bytes)"
        )
    return out


def verify(data: bytes | memoryview, expected_id: str, where: str) -> None:
    """Raise :class:`IntegrityError` unless ``data`` hashes to ``expected_id``."""
    actual = blob_id(data)
    if actual != expected_id:
        raise IntegrityError(
            f"{where}: content hashes to {actual}, expected {expected_id}; "
            "the stored bytes are damaged. Run `snapkit verify` on the "
            "repository and restore from another copy"
        )
