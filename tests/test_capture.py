"""Capture: which objects and files a snapshot takes, the stat cache, dry runs."""

from __future__ import annotations

import logging
import os
import threading
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from capture_fixtures import (
    CountingRepository,
    age,
    isolated_cache,
    make_workspace,
    tree,
)

import snapkit
from snapkit import CaptureReport
from snapkit.errors import ObjectError
from snapkit.store.archive import Archive
from snapkit.store.local import LocalStore
from snapkit.store.repository import StoredBlob

__all__ = ["isolated_cache"]


# -- objects ------------------------------------------------------------------


def test_namespace_is_pruned(tmp_path: Path) -> None:
    """Modules, _private names, IPython's names and builtins are left out."""
    namespace = {
        "np": np,
        "types": types,
        "_private": 1,
        "_1": "an output",
        "__name__": "__main__",
        "In": ["x = 1"],
        "Out": {1: "x"},
        "get_ipython": lambda: None,
        "exit": object(),
        "quit": object(),
        "print": print,
        "Path": Path,
        "x": 1,
        "frame": pd.DataFrame({"a": [1, 2]}),
    }
    with snapkit.capture(namespace=namespace, to=tmp_path / "a.snap") as snap:
        assert snap.objects == ["frame", "x"]


def test_include_takes_exactly_those_names(tmp_path: Path) -> None:
    namespace = {"_hidden": 3, "x": 1, "y": 2}
    with snapkit.capture(
        namespace=namespace, include=["_hidden", "y"], to=tmp_path / "a.snap"
    ) as snap:
        assert snap.objects == ["_hidden", "y"]
        assert snap.load("_hidden") == 3


def test_unpicklable_skip_is_listed_in_the_manifest(tmp_path: Path) -> None:
    report = CaptureReport()
    objects = {"ok": [1, 2], "bad": {"inner": [1, threading.Lock()]}}
    with snapkit.capture(
        objects, on_unpicklable="skip", to=tmp_path / "a.snap", report=report
    ) as snap:
        assert snap.objects == ["ok"]
        assert [s.name for s in snap.manifest.skipped] == ["bad"]
        assert "lock" in snap.manifest.skipped[0].reason
    assert [s.name for s in report.skipped] == ["bad"]


def test_unpicklable_raise_names_the_path(tmp_path: Path) -> None:
    """The error names the variable and the part inside it; no archive is left."""
    target = tmp_path / "a.snap"
    objects = {"ok": [1, 2], "bad": {"inner": [1, threading.Lock()]}}
    with pytest.raises(ObjectError, match=r"bad\['inner'\]\[1\]: .*lock"):
        snapkit.capture(objects, to=target)
    assert tree(tmp_path) - {"snapkit-cache"} == set()


def test_lazy_load_reads_only_that_objects_blobs(tmp_path: Path) -> None:
    big = np.random.default_rng(1).random(400_000)  # 3.2 MB: several chunks
    path = tmp_path / "a.snap"
    snapkit.capture({"big": big, "small": {"k": [1, 2, 3]}}, to=path).close()

    counting = CountingRepository(Archive(path))
    with snapkit.open(counting) as snap:
        big_entry = snap.manifest.object("big")
        small_entry = snap.manifest.object("small")
        assert big_entry is not None and small_entry is not None
        big_ids = {bid for bid, _ in big_entry.blob_refs()}
        small_ids = {bid for bid, _ in small_entry.blob_refs()}
        assert len(big_ids) > 2
        assert snap.load("small") == {"k": [1, 2, 3]}
        assert set(counting.reads) == small_ids

        counting.reads.clear()
        loaded = snap.load("big")
        assert set(counting.reads) == big_ids
        assert loaded.tobytes() == big.tobytes()
    counting.close()


def test_same_objects_give_the_same_ids(tmp_path: Path) -> None:
    """Capturing equal objects twice gives the same blob and content ids."""

    def objects() -> dict[str, object]:
        rng = np.random.default_rng(7)
        return {
            "arr": rng.random((300, 400)),
            "frame": pd.DataFrame({"a": np.arange(1000), "b": ["x"] * 1000}),
            "nested": {"list": [1, (2, 3)], "set": {4, 5}, "none": None},
        }

    manifests = []
    for name in ("one.snap", "two.snap"):
        with snapkit.capture(objects(), to=tmp_path / name) as snap:
            manifests.append(snap.manifest)
    one, two = manifests
    assert [o.name for o in one.objects] == ["arr", "frame", "nested"]
    for a, b in zip(one.objects, two.objects, strict=True):
        assert a.content_id == b.content_id
        assert list(a.blob_refs()) == list(b.blob_refs())
    assert one.blob_ids() == two.blob_ids()


# -- files ----------------------------------------------------------------------


def test_snapignore_is_honoured(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "build").mkdir(parents=True)
    (ws / "keep").mkdir()
    (ws / ".snapignore").write_text("*.log\nbuild/\n!keep/important.log\n")
    (ws / "app.log").write_text("noise")
    (ws / "build" / "out.bin").write_bytes(b"\0" * 10)
    (ws / "keep" / "important.log").write_text("kept")
    (ws / "main.py").write_text("print('hi')\n")
    report = CaptureReport()
    with snapkit.capture(files=ws, to=tmp_path / "a.snap", report=report) as snap:
        paths = [f.path for f in snap.manifest.files]
    assert paths == [".snapignore", "keep/important.log", "main.py"]
    assert {p for p, _ in report.ignored} == {"app.log", "build"}


def test_secrets_are_left_out_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ws = tmp_path / "ws"
    (ws / "conf").mkdir(parents=True)
    (ws / ".env").write_text("TOKEN=x")
    (ws / "conf" / "id_rsa").write_text("key")
    (ws / "server.pem").write_text("cert")
    (ws / "main.py").write_text("print('hi')\n")
    report = CaptureReport()
    caplog.set_level(logging.WARNING, logger="snapkit")
    with snapkit.capture(files=ws, to=tmp_path / "a.snap", report=report) as snap:
        kinds = {f.path: f.kind for f in snap.manifest.files}
    # The folder that held only a secret stays, empty.
    assert kinds == {"conf": "dir", "main.py": "file"}
    assert sorted(report.secrets) == [".env", "conf/id_rsa", "server.pem"]
    for name in report.secrets:
        assert any(name in r.getMessage() for r in caplog.records)


def test_second_capture_of_unchanged_files_comes_from_the_stat_cache(
    tmp_path: Path,
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    for i in range(5):
        (ws / f"f{i}.bin").write_bytes(bytes([i]) * (1000 + i))
    age(ws)
    store = tmp_path / "store"
    store.mkdir()

    first = CaptureReport()
    snapkit.capture(files=ws, to=store, report=first).close()
    assert (first.files, first.files_from_cache) == (5, 0)

    second = CaptureReport()
    snapkit.capture(files=ws, to=store, report=second).close()
    assert (second.files, second.files_from_cache) == (5, 5)
    assert second.new_bytes == 0

    # A changed file (other size, still old enough to be trusted) is re-read.
    changed = ws / "f2.bin"
    changed.write_bytes(b"changed" * 100)
    old = time.time() - 5
    os.utime(changed, (old, old))
    third = CaptureReport()
    snap = snapkit.capture(files=ws, to=store, report=third)
    with snap:
        assert (third.files, third.files_from_cache) == (5, 4)
        assert third.new_bytes == 700
        out = tmp_path / "out"
        snapkit.restore(snap, into=out, objects=[])
    assert (out / "f2.bin").read_bytes() == b"changed" * 100


def _model_read_again(ws: Path, store: Path | LocalStore, out: Path) -> bytes:
    """Capture ``ws`` again, check that no file came from the stat cache, and
    return the bytes of ``model.bin`` as restored from that snapshot."""
    report = CaptureReport()
    with snapkit.capture(files=ws, to=store, report=report) as snap:
        assert report.files_from_cache == 0
        snapkit.restore(snap, into=out, objects=[])
    return (out / "model.bin").read_bytes()


def test_same_size_edit_with_the_mtime_put_back_is_captured(tmp_path: Path) -> None:
    """What ``cp -p`` or ``touch -r`` leave: same size and mtime, new bytes."""
    ws = tmp_path / "ws"
    ws.mkdir()
    model = ws / "model.bin"
    model.write_bytes(b"A" * 4096)
    age(ws)
    mtime_ns = model.stat().st_mtime_ns
    store = tmp_path / "store"
    store.mkdir()
    snapkit.capture(files=ws, to=store).close()

    time.sleep(0.05)  # past the kernel clock tick of the first capture's stat
    model.write_bytes(b"B" * 4096)
    os.utime(model, ns=(mtime_ns, mtime_ns))
    assert _model_read_again(ws, store, tmp_path / "out") == b"B" * 4096


class _RewritesAfterReading(CountingRepository):
    """A real store that rewrites ``path`` in place, same size and mtime, while
    the blob of its old bytes is being stored: after capture read it, before
    the stat cache records it."""

    def __init__(self, inner: LocalStore, path: Path, new: bytes) -> None:
        super().__init__(inner)
        self.path, self.new = path, new
        self.old_id = StoredBlob.from_bytes(path.read_bytes()).id

    def put_raw(self, blob: StoredBlob) -> None:
        super().put_raw(blob)
        if blob.id == self.old_id:
            mtime_ns = self.path.stat().st_mtime_ns
            with open(self.path, "r+b") as f:  # no truncation under the mapping
                f.write(self.new)
            os.utime(self.path, ns=(mtime_ns, mtime_ns))


def test_file_changed_between_reading_and_recording_is_read_again(
    tmp_path: Path,
) -> None:
    """The cache keys what was read by the scan's ctime, taken before the read,
    never by a later one: the next capture reads the changed file again."""
    ws = tmp_path / "ws"
    ws.mkdir()
    model = ws / "model.bin"
    model.write_bytes(b"A" * 4096)
    age(ws)
    time.sleep(0.05)  # past the kernel clock tick of the aged ctime
    store = LocalStore(tmp_path / "store")
    snapkit.capture(files=ws, to=_RewritesAfterReading(store, model, b"B" * 4096))
    assert model.read_bytes() == b"B" * 4096

    assert _model_read_again(ws, store, tmp_path / "out") == b"B" * 4096
    store.close()


def test_stat_cache_never_trusts_a_racy_file(tmp_path: Path) -> None:
    """Files changed within the racy window are read again every time."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "fresh.txt").write_text("just written")
    store = tmp_path / "store"
    store.mkdir()
    for _ in range(2):
        report = CaptureReport()
        snapkit.capture(files=ws, to=store, report=report).close()
        assert report.files_from_cache == 0


def test_dry_run_writes_nothing_but_measures(
    tmp_path: Path, isolated_cache: Path
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    make_workspace(ws)
    before = tree(tmp_path)
    target = tmp_path / "never.snap"
    snap = snapkit.capture(
        {"arr": np.arange(100_000.0)}, files=ws, to=target, dry_run=True
    )
    assert tree(tmp_path) == before
    assert not target.exists()
    assert not isolated_cache.exists()
    (obj,) = snap.manifest.objects
    assert obj.stored_size > 0
    sized = {f.path: f.stored_size for f in snap.manifest.files if f.kind == "file"}
    assert set(sized) == {"run.sh", "private.dat", "notes.txt", "sub/data.bin"}
    assert all(size > 0 for size in sized.values())
