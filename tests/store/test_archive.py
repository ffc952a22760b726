"""The .snap archive: round trips, dedup, corruption, truncation and crashes."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zstandard
from disk_limits import snapkit_with_file_limit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import file_manifest, make_bytes, streams

from snapkit.errors import FormatError, IntegrityError, NotFoundError, UsageError
from snapkit.store.archive import Archive
from snapkit.store.chunker import BlobReader, BlobWriter
from snapkit.store.codec import Codec

from .conftest import SmallArchive, build_small_archive

ZSTD = shutil.which("zstd")


def read_everything(path: Path, small: SmallArchive) -> list[str]:
    """Open, verify and read back every snapshot and blob of a damaged archive.

    Returns the problems ``verify`` reported. Raises IntegrityError when the
    damage is found on the way; fails the test if any byte read back differs
    from what was written while nothing reported the damage.
    """
    with Archive(path) as archive:
        problems = archive.verify()
        if problems:
            return problems
        ids = [s.id for s in archive.snapshots()]
        assert sorted(ids) == sorted(small.snapshot_ids)
        for sid in ids:
            manifest = archive.snapshot(sid)
            assert manifest.id == sid
            for entry in manifest.files:
                for bid, size in entry.blobs:
                    data = archive.get(bid)
                    assert len(data) == size
                    assert data == small.blobs[bid], "wrong bytes returned silently"
        for bid, data in small.blobs.items():
            assert archive.get(bid) == data, "wrong bytes returned silently"
    return []


# -- round trips ---------------------------------------------------------------


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(datas=streams)
def test_round_trip_through_archive(datas: list[bytes]) -> None:
    """Any streams written with BlobWriter read back identical after reopening."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rt.snap"
        with Archive(path, "w") as archive, BlobWriter(archive) as writer:
            refs = {f"f{i}": writer.write(d).refs for i, d in enumerate(datas)}
            sid = archive.add_snapshot(file_manifest("rt", refs))

        with Archive(path) as archive, BlobReader(archive) as reader:
            assert [s.id for s in archive.snapshots()] == [sid]
            manifest = archive.snapshot(sid)
            assert archive.verify() == []
            for i, data in enumerate(datas):
                entry = manifest.files[i]
                assert entry.size == len(data)
                assert bytes(reader.read(entry.blobs)) == data
        assert os.listdir(tmp) == ["rt.snap"], "temporary files left behind"


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=4096), level=st.integers(1, 19))
def test_put_get_round_trip(data: bytes, level: int) -> None:
    """put/get returns the same bytes at any level, before and after close."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pg.snap"
        with Archive(path, "w") as archive:
            blob = archive.put(data, level)
            assert archive.get(blob.id) == data
            assert blob.id == hashlib.sha256(data).hexdigest()
            archive.add_snapshot(file_manifest("pg", {"f": [(blob.id, len(data))]}))
        with Archive(path) as archive:
            assert archive.get(blob.id) == data


def test_append_mode_keeps_and_removes(small_archive: SmallArchive) -> None:
    """Mode 'a' keeps old snapshots, adds new ones, and drops removed ones' blobs."""
    first, second = small_archive.snapshot_ids
    with Archive(small_archive.path, "a") as archive:
        blob = archive.put(b"new content " * 20)
        third = archive.add_snapshot(
            file_manifest("third", {"new.txt": [(blob.id, 240)]})
        )
        archive.remove_snapshot(first[:8])
    with Archive(small_archive.path) as archive:
        assert {s.id for s in archive.snapshots()} == {second, third}
        assert archive.verify() == []
        assert archive.get(blob.id) == b"new content " * 20
        # tiny.txt was only named by the removed snapshot.
        tiny = archive.snapshot(second).files
        assert all(f.path != "tiny.txt" for f in tiny)
        assert len(archive.missing(small_archive.blobs)) == 1


def test_read_only_archive_refuses_writes(small_archive: SmallArchive) -> None:
    with Archive(small_archive.path) as archive, pytest.raises(UsageError):
        archive.put(b"x")


def test_snapshot_naming_missing_blob_is_refused(tmp_path: Path) -> None:
    """add_snapshot names the blobs it lacks and commits nothing."""
    ghost = "ab" * 32
    with Archive(tmp_path / "a.snap", "w") as archive:
        with pytest.raises(IntegrityError, match=ghost):
            archive.add_snapshot(file_manifest("bad", {"f": [(ghost, 3)]}))
        assert archive.snapshots() == []


def test_unknown_snapshot_and_blob(small_archive: SmallArchive) -> None:
    with Archive(small_archive.path) as archive:
        unknown = next(
            p
            for p in ("ffff", "0000")
            if not any(s.startswith(p) for s in small_archive.snapshot_ids)
        )
        with pytest.raises(NotFoundError, match=unknown):
            archive.snapshot(unknown)
        with pytest.raises(NotFoundError, match="ee" * 32):
            archive.get("ee" * 32)


# -- dedup ---------------------------------------------------------------------


def test_same_content_twice_is_stored_once(tmp_path: Path) -> None:
    """A stream written twice, in two files and two snapshots, costs one copy."""
    data = make_bytes(3, 3 * 1024 * 1024, "random")
    once, twice = tmp_path / "once.snap", tmp_path / "twice.snap"
    with Archive(once, "w") as archive, BlobWriter(archive) as writer:
        refs = writer.write(data).refs
        archive.add_snapshot(file_manifest("one", {"a": refs}))
    with Archive(twice, "w") as archive, BlobWriter(archive) as writer:
        first = writer.write(data)
        second = writer.write(data)
        assert first.refs == second.refs
        assert second.new_bytes == 0
        archive.add_snapshot(file_manifest("two", {"a": first.refs, "b": second.refs}))
        archive.add_snapshot(file_manifest("again", {"c": first.refs}))
    with Archive(once) as a, Archive(twice) as b:
        assert set(a.missing(x for x, _ in refs)) == set()
        blob_bytes_once = sum(a.stored_sizes(x for x, _ in refs).values())
        blob_bytes_twice = sum(b.stored_sizes(x for x, _ in refs).values())
        assert blob_bytes_once == blob_bytes_twice
    # Only manifests and index entries differ in size, never the data.
    assert twice.stat().st_size - once.stat().st_size < 2048
    assert twice.stat().st_size < len(data) + 4096


def test_put_of_known_blob_writes_nothing(tmp_path: Path) -> None:
    with Archive(tmp_path / "d.snap", "w") as archive:
        blob = archive.put(b"same" * 100)
        size = archive._writer.offset if archive._writer else 0
        archive.put(b"same" * 100)
        assert archive._writer is not None and archive._writer.offset == size
        archive.add_snapshot(file_manifest("d", {"f": [(blob.id, 400)]}))


def test_orphan_blobs_are_not_kept(tmp_path: Path) -> None:
    """Blobs no snapshot names are dropped at close, so no space is wasted."""
    path = tmp_path / "o.snap"
    with Archive(path, "w") as archive:
        kept = archive.put(b"kept" * 50)
        orphan = archive.put(b"orphan" * 50)
        archive.add_snapshot(file_manifest("o", {"f": [(kept.id, 200)]}))
    with Archive(path) as archive:
        assert archive.missing([kept.id, orphan.id]) == {orphan.id}
        assert archive.verify() == []


# -- corruption and truncation -------------------------------------------------


def _check_damaged(damaged: Path, small: SmallArchive) -> bool:
    """Return True when the damage was detected (error or problems)."""
    try:
        return bool(read_everything(damaged, small))
    except IntegrityError:
        return True


def test_every_flipped_byte_is_detected(tmp_path: Path) -> None:
    """Flip each byte in turn: always an IntegrityError, never wrong data.

    Any other exception type (KeyError, ZstdError, ValueError, ...) fails the
    test by propagating out of ``read_everything``.
    """
    small = build_small_archive(tmp_path / "orig.snap")
    original = small.path.read_bytes()
    assert 1024 < len(original) < 8192
    damaged = tmp_path / "damaged.snap"
    undetected = []
    for at in range(len(original)):
        for mask in (0x01, 0xFF):
            buf = bytearray(original)
            buf[at] ^= mask
            damaged.write_bytes(buf)
            if not _check_damaged(damaged, small):
                undetected.append((at, mask))
    assert undetected == []


def test_every_truncation_is_detected(tmp_path: Path) -> None:
    """Cut the archive at every offset: opening it always raises IntegrityError."""
    small = build_small_archive(tmp_path / "orig.snap")
    original = small.path.read_bytes()
    damaged = tmp_path / "cut.snap"
    for at in range(len(original)):
        damaged.write_bytes(original[:at])
        with pytest.raises(IntegrityError):
            Archive(damaged)


def test_appended_garbage_is_detected(small_archive: SmallArchive) -> None:
    with open(small_archive.path, "ab") as f:
        f.write(b"\x00" * 17)
    with pytest.raises(FormatError):
        Archive(small_archive.path)


def test_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "x.snap").write_bytes(b"PK\x03\x04" + bytes(200))
    with pytest.raises(FormatError, match=r"x\.snap"):
        Archive(tmp_path / "x.snap")
    with pytest.raises(FormatError):
        Archive(tmp_path)
    with pytest.raises(NotFoundError):
        Archive(tmp_path / "absent.snap")


def test_newer_format_version_says_upgrade(small_archive: SmallArchive) -> None:
    buf = bytearray(small_archive.path.read_bytes())
    buf[8:10] = (2).to_bytes(2, "big")
    small_archive.path.write_bytes(buf)
    with pytest.raises(FormatError, match=r"version 2.*upgrade"):
        Archive(small_archive.path)


def _index(path: Path) -> dict[str, list[list[object]]]:
    """Read the index the way a second implementation would: footer, msgpack."""
    raw = path.read_bytes()
    index_at, index_len, digest, end = struct.unpack(">QQ32s8s", raw[-56:])
    assert end == b"SNAPEND\x00"
    index = raw[index_at : index_at + index_len]
    assert hashlib.sha256(index).digest() == digest
    doc: dict[str, list[list[object]]] = msgpack.unpackb(index)
    return doc


def test_error_names_archive_and_blob(small_archive: SmallArchive) -> None:
    """A damaged blob is reported with the archive path, its id and a next step."""
    bid, offset, stored, _raw, _codec = _index(small_archive.path)["blobs"][1]
    assert isinstance(bid, str) and isinstance(offset, int)
    assert isinstance(stored, int)
    buf = bytearray(small_archive.path.read_bytes())
    buf[offset + stored // 2] ^= 0x20
    small_archive.path.write_bytes(buf)
    with Archive(small_archive.path) as archive:
        with pytest.raises(IntegrityError) as info:
            archive.get(bid)
        problems = archive.verify()
    message = str(info.value)
    assert str(small_archive.path) in message
    assert bid in message
    assert "snapkit verify" in message
    assert any(bid in p for p in problems)


# -- other tools can read it ---------------------------------------------------


@pytest.mark.usefixtures("zstd_tool")
def test_blob_frames_readable_by_zstd_tool(small_archive: SmallArchive) -> None:
    """Each ZSTD record, cut out via the index, decompresses with `zstd -d`."""
    assert ZSTD is not None
    raw = small_archive.path.read_bytes()
    frames = 0
    for bid, offset, stored, size, kind in _index(small_archive.path)["blobs"]:
        assert isinstance(offset, int) and isinstance(stored, int)
        record = raw[offset : offset + stored]
        if kind == Codec.RAW:
            assert record == small_archive.blobs[str(bid)]
            continue
        out = subprocess.run(
            [ZSTD, "-d", "-c", "-q"], input=record, capture_output=True, check=True
        ).stdout
        assert len(out) == size
        assert out == small_archive.blobs[str(bid)]
        frames += 1
    assert frames >= 1


def test_manifests_readable_by_plain_msgpack(small_archive: SmallArchive) -> None:
    """A manifest record decompresses to bytes whose SHA-256 is the snapshot id."""
    raw = small_archive.path.read_bytes()
    seen = []
    for sid, offset, stored, size, kind in _index(small_archive.path)["snapshots"]:
        assert isinstance(offset, int) and isinstance(stored, int)
        record = raw[offset : offset + stored]
        if kind == Codec.ZSTD:
            record = zstandard.ZstdDecompressor().decompress(record)
        assert len(record) == size
        assert hashlib.sha256(record).hexdigest() == sid
        doc = msgpack.unpackb(record)
        assert doc["format"] == 1
        assert doc["name"] in ("first", "second")
        for path, kind_, _mode, fsize, _mtime, refs, _target, _st in doc["files"]:
            assert kind_ == "file"
            assert sum(s for _, s in refs) == fsize
            assert all(bid in small_archive.blobs for bid, _ in refs), path
        seen.append(sid)
    assert sorted(seen) == sorted(small_archive.snapshot_ids)


# -- crashes -------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    sys.path.insert(0, {tests!r})
    from snapkit.store.archive import Archive
    from snapkit.store.chunker import BlobWriter
    from strategies import file_manifest, make_bytes

    archive = Archive({path!r}, "w")
    with BlobWriter(archive) as writer:
        refs = writer.write(make_bytes(1, 2_000_000, "random")).refs
    archive.add_snapshot(file_manifest("doomed", {{"f": refs}}))
    archive._tmp.flush()
    if {how!r} == "exit":
        os._exit(1)
    print("ready", flush=True)
    time.sleep(60)
    """
)


@pytest.mark.parametrize("how", ["exit", "sigkill"])
@pytest.mark.parametrize("existing", [False, True], ids=["new", "replacing"])
def test_crash_before_rename_leaves_no_archive(
    tmp_path: Path, how: str, existing: bool
) -> None:
    """A writer killed after writing its blobs never leaves a file at the name."""
    path = tmp_path / "crash.snap"
    before = None
    if existing:
        build_small_archive(path)
        before = path.read_bytes()
    code = CHILD.format(
        tests=str(Path(__file__).parent.parent), path=str(path), how=how
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    if how == "sigkill":
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    child.stdout.close()
    assert child.returncode != 0

    strays = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert strays, "the child should have been writing a temporary file"
    assert strays[0].stat().st_size > 1_000_000
    if before is None:
        assert not path.exists()
    else:
        assert path.read_bytes() == before
        with Archive(path) as archive:
            assert archive.verify() == []


def test_exception_inside_with_removes_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "boom.snap"
    with pytest.raises(RuntimeError), Archive(path, "w") as archive:
        blob = archive.put(b"x" * 1000)
        archive.add_snapshot(file_manifest("boom", {"f": [(blob.id, 1000)]}))
        raise RuntimeError("capture failed")
    assert list(tmp_path.iterdir()) == []


def test_exception_keeps_old_archive(small_archive: SmallArchive) -> None:
    before = small_archive.path.read_bytes()
    with pytest.raises(RuntimeError), Archive(small_archive.path, "w") as archive:
        archive.put(b"y" * 1000)
        raise RuntimeError("capture failed")
    assert small_archive.path.read_bytes() == before
    assert [p.name for p in small_archive.path.parent.iterdir()] == ["small.snap"]


def test_index_over_the_ceiling_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """A footer naming a 512 MiB+ index fails at the footer, reading nothing.

    The archive is a sparse file, so the test costs no disk; the peak of
    Python allocations shows the index was never read.
    """
    import tracemalloc

    from snapkit.store import pack

    path = tmp_path / "huge-index.snap"
    index_len = pack.MAX_INDEX + 1
    index_at = pack.HEADER_SIZE
    with open(path, "wb") as f:
        f.write(struct.pack(">8sHB5s", pack.MAGIC, pack.FORMAT_VERSION, 1, b"\x00" * 5))
        f.seek(index_at + index_len)
        f.write(
            struct.pack(">QQ32s8s", index_at, index_len, b"\x00" * 32, pack.END_MAGIC)
        )
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match="index") as info:
            Archive(path).snapshots()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value)
    assert peak < 16 * 2**20


def test_disk_refusing_a_write_is_a_storage_error(tmp_path: Path) -> None:
    """The file system saying no (here RLIMIT_FSIZE; ENOSPC is handled the
    same) is exit 9 with one line naming the archive, and leaves neither the
    archive nor its temporary file behind."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "noise.bin").write_bytes(os.urandom(3 * 2**20))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "w.snap"
    child = snapkit_with_file_limit(
        2**20, "create", ws, "-o", target, cache=tmp_path / "cache"
    )
    assert child.returncode == 9, child.stderr
    lines = child.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in child.stderr, child.stderr
    assert f"writing archive {target}" in lines[0]
    assert "too large" in lines[0].lower() or "refuses" in lines[0]
    assert list(out_dir.iterdir()) == []


def _rewrite_index(path: Path, change: Any) -> None:
    """Apply ``change`` to the decoded index and write it back with a valid
    checksum and footer: damage the index hash alone would not reveal."""
    from snapkit.store import pack

    data = path.read_bytes()
    footer = data[-pack.FOOTER_SIZE :]
    index_at, index_len, _, end = struct.unpack(">QQ32s8s", footer)
    doc = msgpack.unpackb(data[index_at : index_at + index_len])
    change(doc)
    index = msgpack.packb(doc, use_bin_type=True)
    footer = struct.pack(
        ">QQ32s8s", index_at, len(index), hashlib.sha256(index).digest(), end
    )
    path.write_bytes(data[:index_at] + index + footer)


def _overlap(doc: Any) -> None:
    doc["blobs"][1][1] = doc["blobs"][0][1]


def _duplicate(doc: Any) -> None:
    doc["blobs"][1][0] = doc["blobs"][0][0]


def _far_offset(doc: Any) -> None:
    doc["blobs"][0][1] = 2**63


def _past_the_index(doc: Any) -> None:
    doc["blobs"][-1][2] += 10**6


def _swapped_sizes(doc: Any) -> None:
    first, second = doc["blobs"][0], doc["blobs"][1]
    first[3], second[3] = second[3], first[3]


def _unknown_codec(doc: Any) -> None:
    doc["blobs"][0][4] = 7


@pytest.mark.parametrize(
    "change",
    [
        _overlap,
        _duplicate,
        _far_offset,
        _past_the_index,
        _swapped_sizes,
        _unknown_codec,
    ],
)
def test_self_consistent_hostile_index(
    small_archive: SmallArchive, change: Any
) -> None:
    """An index with a valid checksum that lies about its records is refused
    at open, or each lying record fails on read; never a wrong result."""
    _rewrite_index(small_archive.path, change)
    try:
        problems = read_everything(small_archive.path, small_archive)
    except (FormatError, IntegrityError) as exc:
        assert str(small_archive.path) in str(exc)
    else:
        assert problems, "a hostile index was read back without a problem"
