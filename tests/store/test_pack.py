"""PackWriter's background writeback: bytes go to disk as the pack grows."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import threading
from pathlib import Path

import pytest

from snapkit.store.codec import Codec
from snapkit.store.pack import (
    KIND_ARCHIVE,
    WRITEBACK_EVERY,
    PackReader,
    PackWriter,
)

MIB = 1024 * 1024


def blobs(count: int, size: int) -> list[tuple[str, bytes]]:
    rng = random.Random(count * size)
    out = []
    for _ in range(count):
        data = rng.randbytes(size)
        out.append((hashlib.sha256(data).hexdigest(), data))
    return out


def test_a_growing_pack_is_synced_in_the_background(tmp_path: Path) -> None:
    path = tmp_path / "p.snap"
    written = blobs(3 * WRITEBACK_EVERY // (8 * MIB), 8 * MIB)
    with open(path, "w+b") as f:
        writer = PackWriter(f, KIND_ARCHIVE, writeback=True)
        for bid, data in written:
            writer.add_blob(bid, Codec.RAW, len(data), data)
        assert writer.background_syncs >= 1
        size = writer.finish()
        # finish() waited for the last background sync: no thread is left.
        assert not [t for t in threading.enumerate() if t.name == "snapkit-writeback"]
        os.fsync(f.fileno())
    assert path.stat().st_size == size
    reader = PackReader(path, KIND_ARCHIVE, str(path))
    try:
        for bid, data in written:
            assert reader.read(reader.blobs[bid]) == data
    finally:
        reader.close()


def test_without_writeback_nothing_runs_in_the_background(tmp_path: Path) -> None:
    with open(tmp_path / "p.snap", "w+b") as f:
        writer = PackWriter(f, KIND_ARCHIVE)
        for bid, data in blobs(WRITEBACK_EVERY // MIB + 1, MIB):
            writer.add_blob(bid, Codec.RAW, len(data), data)
        assert writer.background_syncs == 0
        writer.finish()


def test_a_failed_background_sync_is_raised_by_finish() -> None:
    """Linux reports a writeback error to one sync call only, so an error
    met in the background must reach the caller. A pipe makes ``fdatasync``
    fail for real (EINVAL)."""
    read_end, write_end = os.pipe()
    drained = bytearray()

    def drain() -> None:
        while chunk := os.read(read_end, MIB):
            drained.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        with open(write_end, "wb") as sink:
            writer = PackWriter(sink, KIND_ARCHIVE, writeback=True)
            for bid, data in blobs(WRITEBACK_EVERY // (4 * MIB) + 1, 4 * MIB):
                writer.add_blob(bid, Codec.RAW, len(data), data)
            assert writer.background_syncs >= 1
            with pytest.raises(OSError) as caught:
                writer.finish()
            assert caught.value.errno == errno.EINVAL
    finally:
        reader.join(timeout=30)
        os.close(read_end)
    assert len(drained) > WRITEBACK_EVERY
