"""copy(): only missing blobs move, as stored, and the manifest comes last."""

from __future__ import annotations

from pathlib import Path

import pytest
from strategies import file_manifest, make_bytes

from snapkit.errors import IntegrityError, NotFoundError
from snapkit.store.archive import Archive
from snapkit.store.chunker import BlobWriter
from snapkit.store.copy import copy
from snapkit.store.local import LocalStore
from snapkit.store.repository import StoredBlob
from snapkit.workspace.manifest import Manifest


class CountingStore(LocalStore):
    """A local store that records every put_raw and add_snapshot it receives."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.puts: list[str] = []
        self.events: list[str] = []

    def put_raw(self, blob: StoredBlob) -> None:
        self.puts.append(blob.id)
        self.events.append("blob")
        super().put_raw(blob)

    def add_snapshot(self, manifest: Manifest) -> str:
        self.events.append("snapshot")
        return super().add_snapshot(manifest)


def _source(path: Path) -> tuple[str, str, dict[str, bytes]]:
    """Two snapshots that share most of their blobs."""
    common = make_bytes(1, 3 * 1024 * 1024, "random")
    extra = make_bytes(2, 1024 * 1024, "text")
    contents: dict[str, bytes] = {}
    with Archive(path, "w") as archive, BlobWriter(archive) as writer:
        a = writer.write(common).refs
        b = writer.write(extra).refs
        first = archive.add_snapshot(file_manifest("first", {"common": a}))
        second = archive.add_snapshot(
            file_manifest("second", {"common": a, "extra": b})
        )
    with Archive(path) as archive:
        for sid in (first, second):
            for bid in archive.snapshot(sid).blob_ids():
                contents[bid] = archive.get(bid)
    return first, second, contents


def test_copy_moves_only_missing_blobs(tmp_path: Path) -> None:
    first, second, contents = _source(tmp_path / "src.snap")
    with Archive(tmp_path / "src.snap") as src:
        first_ids = src.snapshot(first).blob_ids()
        second_ids = src.snapshot(second).blob_ids()
        dst = CountingStore(tmp_path / "dst")

        stats = copy(src, dst, first[:8])
        assert stats.snapshot_id == first
        assert stats.blobs_sent == stats.blobs_total == len(first_ids)
        assert sorted(dst.puts) == sorted(first_ids)
        assert stats.bytes_sent == sum(src.stored_sizes(first_ids).values())
        assert dst.events[-1] == "snapshot" and dst.events.count("snapshot") == 1

        dst.puts.clear()
        stats = copy(src, dst, second)
        new = second_ids - first_ids
        assert new and stats.blobs_sent == len(new)
        assert sorted(dst.puts) == sorted(new)
        assert stats.blobs_total == len(second_ids)

        dst.puts.clear()
        again = copy(src, dst, second)
        assert again.blobs_sent == 0 and dst.puts == []
        dst.close()

    with LocalStore(tmp_path / "dst") as dst:
        assert {s.id for s in dst.snapshots()} == {first, second}
        for bid, data in contents.items():
            assert dst.get(bid) == data


def test_copy_keeps_compressed_bytes_as_they_are(tmp_path: Path) -> None:
    first, _, _ = _source(tmp_path / "src.snap")
    with (
        Archive(tmp_path / "src.snap") as src,
        Archive(tmp_path / "dst.snap", "w") as dst,
    ):
        copy(src, dst, first)
        for bid in src.snapshot(first).blob_ids():
            assert dst.get_raw(bid).data == src.get_raw(bid).data
    with Archive(tmp_path / "dst.snap") as dst:
        assert [s.id for s in dst.snapshots()] == [first]
        assert dst.verify() == []


def test_copy_reports_progress(tmp_path: Path) -> None:
    first, _, _ = _source(tmp_path / "src.snap")
    seen: list[tuple[int, int]] = []
    with Archive(tmp_path / "src.snap") as src, LocalStore(tmp_path / "d") as dst:
        stats = copy(src, dst, first, progress=lambda a, b: seen.append((a, b)))
    assert seen and seen[-1] == (stats.bytes_sent, stats.bytes_sent)
    assert [a for a, _ in seen] == sorted(a for a, _ in seen)


def test_corrupt_source_blob_stops_copy_before_manifest(tmp_path: Path) -> None:
    """The destination verifies each blob; a bad one means no snapshot there."""
    src_path = tmp_path / "src.snap"
    first, _, _ = _source(src_path)
    buf = bytearray(src_path.read_bytes())
    buf[100] ^= 0xFF  # inside the first blob record
    src_path.write_bytes(buf)
    with Archive(src_path) as src, LocalStore(tmp_path / "d") as dst:
        with pytest.raises(IntegrityError, match=str(tmp_path / "d")):
            copy(src, dst, first)
        assert dst.snapshots() == []


def test_copy_unknown_snapshot(tmp_path: Path) -> None:
    first, _, _ = _source(tmp_path / "src.snap")
    unknown = "0000" if not first.startswith("0000") else "ffff"
    with Archive(tmp_path / "src.snap") as src, LocalStore(tmp_path / "d") as dst:
        with pytest.raises(NotFoundError):
            copy(src, dst, unknown)
        assert dst.snapshots() == []
