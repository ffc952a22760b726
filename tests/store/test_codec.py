"""Blob frames: deterministic encoding, and hostile zstd frames rejected cheaply."""

from __future__ import annotations

import struct
import tracemalloc

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import make_bytes

from snapkit.errors import FormatError, IntegrityError, UsageError
from snapkit.store import codec
from snapkit.store.codec import MAX_BLOB_SIZE, MAX_WINDOW, Codec

MAGIC = struct.pack("<I", 0xFD2FB528)
GIB = 1 << 30


def frame_header(content_size: int, window_log: int) -> bytes:
    """Hand-craft a zstd frame header: window descriptor plus 8-byte size."""
    # Frame header descriptor: 8-byte content size field, no single segment
    # (so a window descriptor follows), no checksum, no dictionary id.
    descriptor = 0b1100_0000
    window = (window_log - 10) << 3
    return MAGIC + bytes([descriptor, window]) + struct.pack("<Q", content_size)


def raw_block(data: bytes, last: bool = True) -> bytes:
    header = int(last) | (0 << 1) | (len(data) << 3)
    return header.to_bytes(3, "little") + data


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=8192), level=st.integers(1, 19))
def test_encode_decode_round_trip(data: bytes, level: int) -> None:
    kind, stored = codec.encode(data, level)
    assert codec.decode(kind, stored, len(data), "t") == data
    if kind == Codec.ZSTD:
        assert len(stored) <= len(data) * (1 - codec.MIN_SAVING)
        params = zstandard.get_frame_parameters(stored)
        assert params.content_size == len(data)
        assert not params.has_checksum
        assert params.dict_id == 0
    else:
        assert stored == data


def test_encode_is_deterministic() -> None:
    data = make_bytes(5, 200_000, "text")
    assert codec.encode(data) == codec.encode(bytes(data))
    assert codec.encode(memoryview(data))[1] == codec.encode(data)[1]


def test_incompressible_stays_raw_and_compressible_does_not() -> None:
    assert codec.encode(make_bytes(1, 100_000, "random"))[0] == Codec.RAW
    assert codec.encode(bytes(100_000))[0] == Codec.ZSTD
    assert codec.encode(b"a" * 63)[0] == Codec.RAW


def test_level_is_checked() -> None:
    with pytest.raises(UsageError, match="level"):
        codec.check_level(0)
    with pytest.raises(UsageError):
        codec.check_level(23)


def test_oversized_blob_is_refused_on_encode() -> None:
    class Huge(bytes):
        def __len__(self) -> int:
            return MAX_BLOB_SIZE + 1

    with pytest.raises(UsageError, match="chunker"):
        codec.encode(Huge(b""))


def test_verify_names_expected_and_actual() -> None:
    with pytest.raises(IntegrityError) as info:
        codec.verify(b"abc", "00" * 32, "archive x.snap: blob 00")
    message = str(info.value)
    assert "00" * 32 in message and codec.blob_id(b"abc") in message
    assert "x.snap" in message


# -- hostile frames ------------------------------------------------------------


def _decode_peak(stored: bytes, raw_size: int) -> tuple[BaseException, int]:
    tracemalloc.start()
    try:
        codec.decode(Codec.ZSTD, stored, raw_size, "hostile")
    except Exception as exc:
        error: BaseException = exc
    else:
        pytest.fail("a hostile frame was accepted")
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return error, peak


@pytest.mark.parametrize("index_says", [GIB, 100], ids=["index-agrees", "index-small"])
def test_huge_declared_size_rejected_without_allocation(index_says: int) -> None:
    """A frame that declares 1 GiB is refused before any output buffer exists."""
    stored = frame_header(GIB, 20) + raw_block(b"x" * 100)
    error, peak = _decode_peak(stored, index_says)
    assert isinstance(error, FormatError)
    assert peak < 4 * 1024 * 1024


def test_real_bomb_under_a_lying_index_is_rejected_cheaply() -> None:
    """128 MiB of zeros compress to a few KiB; the index claims 1000 bytes."""
    bomb = zstandard.ZstdCompressor(level=19).compress(bytes(GIB // 8))
    error, peak = _decode_peak(bomb, 1000)
    assert isinstance(error, FormatError)
    assert peak < 4 * 1024 * 1024


def test_huge_window_rejected() -> None:
    """A 2 GiB window is refused from the header, whatever the content size."""
    stored = frame_header(100, 31) + raw_block(b"x" * 100)
    assert zstandard.get_frame_parameters(stored).window_size == 2 * GIB
    error, peak = _decode_peak(stored, 100)
    assert isinstance(error, FormatError)
    assert "window" in str(error)
    assert peak < 4 * 1024 * 1024


def test_window_at_the_ceiling_is_fine() -> None:
    log = MAX_WINDOW.bit_length() - 1
    stored = frame_header(100, log) + raw_block(b"x" * 100)
    assert codec.decode(Codec.ZSTD, stored, 100, "ok") == b"x" * 100


def test_declared_size_over_ceiling_rejected() -> None:
    stored = frame_header(MAX_BLOB_SIZE + 1, 20) + raw_block(b"x")
    with pytest.raises(FormatError, match="ceiling"):
        codec.decode(Codec.ZSTD, stored, MAX_BLOB_SIZE + 1, "t")
    with pytest.raises(FormatError):
        codec.decode(Codec.RAW, b"", -1, "t")


def test_trailing_data_after_frame() -> None:
    data = b"hello world " * 50
    _, frame = codec.encode(data)
    with pytest.raises(FormatError, match="extra bytes"):
        codec.decode(Codec.ZSTD, frame + b"\x00", len(data), "t")


def test_two_frames_concatenated() -> None:
    data = b"hello world " * 50
    _, frame = codec.encode(data)
    with pytest.raises(FormatError):
        codec.decode(Codec.ZSTD, frame + frame, len(data), "t")
    with pytest.raises(FormatError):
        codec.decode(Codec.ZSTD, frame + frame, 2 * len(data), "t")


def test_declared_size_mismatch() -> None:
    """The frame header and the index must agree, and the output with both."""
    data = b"abc" * 100
    _, frame = codec.encode(data)
    with pytest.raises(FormatError, match="declares 300"):
        codec.decode(Codec.ZSTD, frame, 299, "t")
    # Header says 300, but the one raw block holds only 100 bytes.
    lying = frame_header(300, 20) + raw_block(b"x" * 100)
    with pytest.raises(IntegrityError):
        codec.decode(Codec.ZSTD, lying, 300, "t")


def test_unknown_content_size_rejected() -> None:
    data = b"no size recorded " * 40
    frame = zstandard.ZstdCompressor(write_content_size=False).compress(data)
    for claimed in (0, len(data)):
        with pytest.raises(FormatError):
            codec.decode(Codec.ZSTD, frame, claimed, "t")


def test_truncated_and_garbage_frames() -> None:
    data = make_bytes(2, 10_000, "text")
    _, frame = codec.encode(data)
    for cut in (0, 3, 5, len(frame) // 2, len(frame) - 1):
        with pytest.raises(IntegrityError):
            codec.decode(Codec.ZSTD, frame[:cut], len(data), "t")
    with pytest.raises(FormatError, match="not a zstandard frame"):
        codec.decode(Codec.ZSTD, b"\x00" * 32, 32, "t")


def test_skippable_frame_rejected() -> None:
    skippable = struct.pack("<II", 0x184D2A50, 4) + b"abcd"
    for claimed in (0, 4):
        with pytest.raises(IntegrityError):
            codec.decode(Codec.ZSTD, skippable, claimed, "t")


def test_unknown_codec_and_raw_size_mismatch() -> None:
    with pytest.raises(FormatError, match="unknown codec 7"):
        codec.decode(7, b"abc", 3, "t")
    with pytest.raises(IntegrityError, match="index says 4"):
        codec.decode(Codec.RAW, b"abc", 4, "t")


@settings(max_examples=300, deadline=None)
@given(junk=st.binary(max_size=300), size=st.integers(0, 1 << 20))
def test_random_frames_raise_only_snapkit_errors(junk: bytes, size: int) -> None:
    """Arbitrary bytes behind a valid magic never escape as ZstdError."""
    for stored in (junk, MAGIC + junk):
        try:
            out = codec.decode(Codec.ZSTD, stored, size, "fuzz")
        except IntegrityError:
            continue
        assert len(out) == size
