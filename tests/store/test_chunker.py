"""Content-defined chunking, and the parallel BlobWriter and BlobReader."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from array import array
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from strategies import make_bytes, stream_bytes

from snapkit.errors import IntegrityError, NotFoundError
from snapkit.store.chunker import (
    COMPILED,
    MAX_CHUNK,
    MIN_CHUNK,
    SMALL,
    BlobReader,
    BlobWriter,
    as_bytes_view,
    cut,
)
from snapkit.store.local import LocalStore

MIB = 1024 * 1024
#: Chunk sizes of ``random.Random(20261204).randbytes(12 MiB)``, as cut by
#: FastCDC 2020 (pyfastcdc 0.3.1: min 256 KiB, average parameter 512 KiB,
#: max 4 MiB, normalized chunking 2).
EXPECTED_SIZES = [
    626468, 827854, 585842, 587127, 681230, 388335, 484819, 557351,
    526667, 608049, 436223, 884270, 584040, 560800, 636419, 457470,
    599873, 784279, 551499, 537826, 656425, 20046,
]  # fmt: skip


def chunk_ids(data: bytes) -> list[str]:
    return [hashlib.sha256(c).hexdigest() for c in cut(memoryview(data))]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=stream_bytes(max_size=6 * MIB))
def test_chunks_tile_the_stream(data: bytes) -> None:
    pieces = list(cut(memoryview(data)))
    assert b"".join(pieces) == data
    if len(data) < SMALL:
        assert len(pieces) == 1
    else:
        assert all(p.nbytes <= MAX_CHUNK for p in pieces)
        assert all(p.nbytes >= MIN_CHUNK for p in pieces[:-1])


def test_insert_in_the_middle_changes_at_most_three_blobs() -> None:
    """1 KiB inserted in the middle of 64 MiB touches only the chunks around it."""
    rng = random.Random(20260103)
    data = rng.randbytes(64 * MIB)
    middle = len(data) // 2
    edited = data[:middle] + rng.randbytes(1024) + data[middle:]

    before, after = chunk_ids(data), chunk_ids(edited)
    assert len(before) > 20
    changed = [i for i in after if i not in set(before)]
    assert 1 <= len(changed) <= 3


def test_insert_at_the_start_changes_at_most_three_blobs() -> None:
    rng = random.Random(7)
    data = rng.randbytes(16 * MIB)
    before = set(chunk_ids(data))
    changed = [i for i in chunk_ids(b"#" * 1024 + data) if i not in before]
    assert 1 <= len(changed) <= 3


def test_writer_dedups_and_reader_restores(tmp_path: Path) -> None:
    data = make_bytes(11, 5 * MIB, "text")
    with LocalStore(tmp_path / "s") as store:
        with BlobWriter(store) as writer:
            first = writer.write(data)
            second = writer.write(data)
        assert first.refs == second.refs
        assert first.new_bytes == len(data)
        assert second.new_bytes == 0
        assert first.stored_size == second.stored_size < len(data)
        assert writer.raw_bytes == 2 * len(data)
        with BlobReader(store) as reader:
            assert bytes(reader.read(first.refs)) == data
            out = tmp_path / "out.bin"
            reader.write_to(first.refs, out)
            assert out.read_bytes() == data


def test_dry_run_writes_nothing_but_measures(tmp_path: Path) -> None:
    data = make_bytes(12, 2 * MIB, "text")
    with BlobWriter(None) as writer:
        result = writer.write(data)
    assert result.new_bytes == len(data)
    assert 0 < result.stored_size < len(data)


def test_write_file_and_empty_file(tmp_path: Path) -> None:
    data = make_bytes(13, 3 * MIB, "random")
    (tmp_path / "big").write_bytes(data)
    (tmp_path / "empty").write_bytes(b"")
    with LocalStore(tmp_path / "s") as store, BlobWriter(store) as writer:
        big = writer.write_file(tmp_path / "big")
        empty = writer.write_file(tmp_path / "empty")
        assert empty.refs == [(hashlib.sha256(b"").hexdigest(), 0)]
        with BlobReader(store) as reader:
            assert bytes(reader.read(big.refs)) == data
            assert bytes(reader.read(empty.refs)) == b""


def test_typed_buffers_are_cut_as_bytes() -> None:
    """A float64 array's buffer is cut by its bytes, without a copy."""
    values = array("d", (float(i) for i in range(200_000)))
    view = as_bytes_view(values)
    assert view.nbytes == len(values) * 8
    assert view.obj is values
    with BlobWriter(None) as writer:
        refs = writer.write(values).refs
    assert sum(s for _, s in refs) == view.nbytes


def test_reader_reports_size_mismatch_and_missing(tmp_path: Path) -> None:
    with LocalStore(tmp_path / "s") as store:
        blob = store.put(b"abc" * 100)
        with BlobReader(store) as reader:
            with pytest.raises(IntegrityError, match=blob.id):
                reader.read([(blob.id, 299)], "file x")
            with pytest.raises(NotFoundError):
                reader.read([("00" * 32, 3)])


def test_chunk_boundaries_stay_where_they_are() -> None:
    """The cut points of a fixed stream, recorded when the chunker was chosen.

    Dedup against snapshots taken by earlier versions depends on the same
    content being cut the same way. If this fails, the chunker (or a
    pyfastcdc release) moved the boundaries: every existing snapshot would be
    uploaded again in full. Change the expected list only on purpose, and say
    so in the changelog.
    """
    data = random.Random(20261204).randbytes(12 * MIB)
    sizes = [piece.nbytes for piece in cut(memoryview(data))]
    assert sum(sizes) == len(data)
    assert sizes == EXPECTED_SIZES


def test_a_chunker_without_its_compiled_core_is_refused(tmp_path: Path) -> None:
    """pyfastcdc falls back to pure Python when its extension will not load;
    snapkit refuses that (minutes per GiB) with a message naming the fix,
    and a small stream, which is never cut, still works."""
    script = """
import sys
sys.modules["pyfastcdc.cy"] = None  # the compiled extension fails to import
from snapkit.errors import EnvironmentMismatchError
from snapkit.store.chunker import COMPILED, SMALL, cut
assert not COMPILED
assert len(list(cut(memoryview(bytes(SMALL - 1))))) == 1
try:
    list(cut(memoryview(bytes(SMALL))))
except EnvironmentMismatchError as exc:
    print(exc)
else:
    raise SystemExit("a large stream was cut by the pure-Python chunker")
"""
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "no compiled chunker" in done.stdout
    assert "--only-binary=:all: pyfastcdc" in done.stdout
    assert str(SMALL) in done.stdout


def test_the_compiled_chunker_is_the_one_in_use() -> None:
    assert COMPILED


def test_create_without_the_compiled_chunker_is_exit_5(tmp_path: Path) -> None:
    """From the CLI the refusal is one line and exit 5, and no archive (nor
    its temporary file) is left behind."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "big.bin").write_bytes(make_bytes(14, 2 * MIB, "random"))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    script = """
import sys
sys.modules["pyfastcdc.cy"] = None
from snapkit.cli import main
sys.exit(main(sys.argv[1:]))
"""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "create",
            str(ws),
            "-o",
            str(out_dir / "w.snap"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "SNAPKIT_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert done.returncode == 5, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "no compiled chunker" in lines[0]
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize("kind", ["archive", "local"])
def test_raw_chunks_go_to_a_writing_repository_as_views(
    tmp_path: Path, kind: str
) -> None:
    """An archive or local store writes each blob before put_raw returns, so
    incompressible chunks reach it as views of the input (no copy); what
    lands on disk is still the input, and the mapped file can be closed."""
    from snapkit.store.archive import Archive
    from snapkit.store.repository import Repository, StoredBlob

    seen: list[type] = []

    class Watching(Archive if kind == "archive" else LocalStore):  # type: ignore[misc]
        def put_raw(self, blob: StoredBlob) -> None:
            seen.append(type(blob.data))
            super().put_raw(blob)

    data = make_bytes(15, 3 * MIB, "random")
    (tmp_path / "big").write_bytes(data)
    target = tmp_path / ("a.snap" if kind == "archive" else "store")
    repo: Repository = Watching(target, "w") if kind == "archive" else Watching(target)
    assert not repo.keeps_blob_data
    with BlobWriter(repo) as writer:
        refs = writer.write_file(tmp_path / "big").refs
    assert seen and set(seen) == {memoryview}
    with BlobReader(repo) as reader:
        assert bytes(reader.read(refs)) == data
    repo.abort()
