"""The local store: round trips, reopening, packs, crashes and corruption."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from strategies import file_manifest, make_bytes, streams

from snapkit.errors import FormatError, IntegrityError, NotFoundError, UsageError
from snapkit.store import local as local_module
from snapkit.store.archive import Archive
from snapkit.store.chunker import BlobReader, BlobWriter
from snapkit.store.copy import copy
from snapkit.store.local import LocalStore

from .conftest import build_small_archive


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(datas=streams)
def test_round_trip_through_local_store(datas: list[bytes]) -> None:
    """Streams written, flushed and read back after reopening are identical."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "store"
        with LocalStore(root) as store, BlobWriter(store) as writer:
            refs = {f"f{i}": writer.write(d).refs for i, d in enumerate(datas)}
            # Readable before the pack is finished, too.
            with BlobReader(store) as reader:
                assert bytes(reader.read(refs["f0"])) == datas[0]
            sid = store.add_snapshot(file_manifest("rt", refs))

        with LocalStore(root, create=False) as store, BlobReader(store) as reader:
            assert [s.id for s in store.snapshots()] == [sid]
            manifest = store.snapshot(sid[:6])
            for i, data in enumerate(datas):
                assert bytes(reader.read(manifest.files[i].blobs)) == data
            assert store.verify() == []
        assert list((root / "tmp").iterdir()) == []


def test_layout_and_dedup(tmp_path: Path) -> None:
    root = tmp_path / "store"
    data = make_bytes(4, 2 * 1024 * 1024, "random")
    with LocalStore(root) as store, BlobWriter(store) as writer:
        refs = writer.write(data).refs
        store.add_snapshot(file_manifest("a", {"x": refs}))
    with LocalStore(root) as store, BlobWriter(store) as writer:
        again = writer.write(data)
        assert again.new_bytes == 0
        store.add_snapshot(file_manifest("b", {"x": again.refs, "y": again.refs}))
    packs = list(root.glob("packs/*/*.pack"))
    assert len(packs) == 1, "the second capture should have written no pack"
    assert sum(p.stat().st_size for p in packs) < len(data) + 4096
    assert len(list((root / "snapshots").iterdir())) == 2
    assert (root / "snapkit-store").is_file()


def test_packs_roll_over_at_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_module, "PACK_TARGET", 10_000)
    root = tmp_path / "store"
    with LocalStore(root) as store:
        blobs = [store.put(make_bytes(i, 4000, "random")) for i in range(10)]
    assert len(list(root.glob("packs/*/*.pack"))) >= 3
    with LocalStore(root) as store:
        for i, blob in enumerate(blobs):
            assert store.get(blob.id) == make_bytes(i, 4000, "random")


def test_remove_snapshot(tmp_path: Path) -> None:
    with LocalStore(tmp_path / "s") as store:
        blob = store.put(b"abc" * 50)
        sid = store.add_snapshot(file_manifest("a", {"f": [(blob.id, 150)]}))
        assert store.remove_snapshot(sid[:5]) == sid
        assert store.snapshots() == []
        with pytest.raises(NotFoundError):
            store.snapshot(sid)
        # Blobs stay until garbage collection.
        assert store.get(blob.id) == b"abc" * 50


def test_refuses_foreign_folders(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(UsageError, match="not empty"):
        LocalStore(tmp_path / "full")
    with pytest.raises(NotFoundError):
        LocalStore(tmp_path / "absent", create=False)
    LocalStore(tmp_path / "s").close()
    (tmp_path / "s" / "snapkit-store").write_bytes(b"\x82\xa1a\x01\xa1b\x02")
    with pytest.raises(FormatError, match="upgrade"):
        LocalStore(tmp_path / "s")


def test_missing_blob_refuses_snapshot(store: LocalStore) -> None:
    ghost = "cd" * 32
    with pytest.raises(IntegrityError, match=ghost):
        store.add_snapshot(file_manifest("bad", {"f": [(ghost, 1)]}))
    assert store.snapshots() == []


def test_corrupt_pack_and_snapshot_are_reported(tmp_path: Path) -> None:
    root = tmp_path / "s"
    with LocalStore(root) as store:
        blob = store.put(b"precious " * 100)
        sid = store.add_snapshot(file_manifest("a", {"f": [(blob.id, 900)]}))
    pack = next(root.glob("packs/*/*.pack"))
    buf = bytearray(pack.read_bytes())
    buf[20] ^= 0x01  # inside the first (only) record
    pack.write_bytes(buf)
    with LocalStore(root) as store:
        with pytest.raises(IntegrityError) as info:
            store.get(blob.id)
        assert blob.id in str(info.value) and str(root) in str(info.value)
        assert any(blob.id in p for p in store.verify())

    snap = root / "snapshots" / sid
    manifest = bytearray(snap.read_bytes())
    manifest[-1] ^= 0x01
    snap.write_bytes(manifest)
    with LocalStore(root) as store:
        with pytest.raises(IntegrityError, match=sid):
            store.snapshot(sid)
        assert any(sid in p for p in store.verify())


def test_every_flipped_byte_of_a_pack_is_detected(tmp_path: Path) -> None:
    root = tmp_path / "s"
    with LocalStore(root) as store:
        data = {store.put(d).id: d for d in (b"a" * 300, make_bytes(1, 500, "random"))}
    pack = next(root.glob("packs/*/*.pack"))
    original = pack.read_bytes()
    for at in range(len(original)):
        buf = bytearray(original)
        buf[at] ^= 0x01
        pack.write_bytes(buf)
        try:
            with LocalStore(root) as store:
                for bid, expected in data.items():
                    assert store.get(bid) == expected, f"flip at {at} went unseen"
        except IntegrityError:
            continue
        pytest.fail(f"flip at byte {at} was not detected")


CHILD = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {tests!r})
    from snapkit.store.archive import Archive
    from snapkit.store.local import LocalStore

    src = Archive({archive!r})
    dst = LocalStore({root!r})
    ids = sorted(src.snapshot({sid!r}).blob_ids())
    for i, bid in enumerate(ids):
        dst.put_raw(src.get_raw(bid))
        if i == 1:
            dst.flush()  # the first two blobs become durable
    dst._tmp.flush()
    os._exit(1)  # killed before add_snapshot
    """
)


def test_crash_before_add_snapshot(tmp_path: Path) -> None:
    """A copy killed before its manifest leaves no snapshot; a retry sends the rest."""
    small = build_small_archive(tmp_path / "src.snap")
    sid = small.snapshot_ids[1]  # names three blobs
    root = tmp_path / "store"
    code = CHILD.format(
        tests=str(Path(__file__).parent.parent),
        archive=str(small.path),
        root=str(root),
        sid=sid,
    )
    child = subprocess.run([sys.executable, "-c", code], check=False)
    assert child.returncode == 1
    assert len(list((root / "tmp").iterdir())) == 1, "an unfinished pack"

    with Archive(small.path) as src, LocalStore(root) as dst:
        assert dst.snapshots() == []
        assert list((root / "tmp").iterdir()) == []
        stats = copy(src, dst, sid)
        assert (stats.blobs_total, stats.blobs_sent) == (3, 1)
        assert [s.id for s in dst.snapshots()] == [sid]
        assert dst.verify() == []


def test_manifest_file_over_the_ceiling_is_refused_unread(tmp_path: Path) -> None:
    """A snapshot file larger than any manifest may be is not read at all."""
    from snapkit.errors import FormatError
    from snapkit.store.codec import MAX_BLOB_SIZE

    root = tmp_path / "s"
    with LocalStore(root) as store:
        blob = store.put(b"x" * 100)
        sid = store.add_snapshot(file_manifest("a", {"f": [(blob.id, 100)]}))
    with open(root / "snapshots" / sid, "r+b") as f:
        f.truncate(MAX_BLOB_SIZE + 1)  # sparse: costs no disk
    with (
        LocalStore(root) as store,
        pytest.raises(FormatError, match="ceiling on a manifest") as info,
    ):
        store.snapshot(sid)
    assert sid in str(info.value)
