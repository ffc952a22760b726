"""Helpers shared by the capture and restore tests.

A module rather than a ``conftest.py`` so the tests that need these say so by
importing them. ``isolated_cache`` is autouse once imported: every test gets
its own stat cache folder instead of the user's ``~/.cache/snapkit``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from snapkit.store.archive import Archive
from snapkit.store.repository import Repository, SnapshotInfo, StoredBlob
from snapkit.workspace.manifest import BlobRef, Distribution, FileEntry, Manifest

#: A distribution no machine has installed.
GHOST = "snapkit-test-ghost-distribution"

CREATED = "2026-01-02T03:04:05.000000Z"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the stat cache at a folder of this test's own."""
    cache = tmp_path / "snapkit-cache"
    monkeypatch.setenv("SNAPKIT_CACHE_DIR", str(cache))
    return cache


def age(root: Path, seconds: float = 10.0) -> None:
    """Set the mtime of everything under ``root`` ``seconds`` in the past.

    The stat cache never trusts a file changed within its racy window, so a
    test that expects cache hits needs files older than that.
    """
    when = time.time() - seconds
    for path in [root, *root.rglob("*")]:
        os.utime(path, (when, when), follow_symlinks=False)


def make_workspace(root: Path) -> dict[str, bytes]:
    """Build a small working directory; return the regular files' bytes.

    It holds a 0o755 script, a 0o600 and a 0o644 file, a file in a subfolder
    big enough to be cut into several chunks, an empty folder and a symlink.
    """
    contents = {
        "run.sh": b"#!/bin/sh\necho hello\n",
        "private.dat": b"only for me\n" * 10,
        "notes.txt": b"snapkit notes\n" * 300,
        "sub/data.bin": bytes(range(256)) * 6000,
    }
    modes = {"run.sh": 0o755, "private.dat": 0o600, "notes.txt": 0o644}
    for rel, data in contents.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(modes.get(rel, 0o644))
    (root / "empty").mkdir()
    os.symlink("notes.txt", root / "link")
    return contents


def tree(root: Path) -> set[str]:
    """Every path under ``root`` (links not followed), relative, sorted."""
    if not root.exists():
        return set()
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def temp_leftovers(root: Path) -> list[str]:
    """Names of restore's temporary files left anywhere under ``root``."""
    return sorted(p for p in tree(root) if ".snapkit-" in p.rpartition("/")[2])


def hostile_archive(
    path: Path, entries: list[FileEntry], blobs: Iterable[bytes] = ()
) -> Path:
    """Write an archive whose one snapshot lists ``entries`` as files.

    ``blobs`` are stored first so a file entry can name them; build the refs
    with :func:`ref`.
    """
    with Archive(path, "w") as archive:
        for data in blobs:
            archive.put(data)
        archive.add_snapshot(Manifest(name="hostile", created=CREATED, files=entries))
    return path


def ref(data: bytes) -> list[BlobRef]:
    """The chunk list of ``data`` stored as a single blob."""
    return [(StoredBlob.from_bytes(data).id, len(data))]


def file_entry(path: str, data: bytes, mode: int = 0o644) -> FileEntry:
    return FileEntry(path, "file", mode, len(data), 0, ref(data))


class CountingRepository(Repository):
    """A real repository underneath; remembers every blob id read from it."""

    def __init__(self, inner: Repository) -> None:
        self.inner = inner
        self.where = inner.where
        self.reads: list[str] = []

    def missing(self, ids: Iterable[str]) -> set[str]:
        return self.inner.missing(ids)

    def stored_sizes(self, ids: Iterable[str]) -> dict[str, int]:
        return self.inner.stored_sizes(ids)

    def put_raw(self, blob: StoredBlob) -> None:
        self.inner.put_raw(blob)

    def get_raw(self, blob_id: str) -> StoredBlob:
        self.reads.append(blob_id)
        return self.inner.get_raw(blob_id)

    def add_snapshot(self, manifest: Manifest) -> str:
        return self.inner.add_snapshot(manifest)

    def snapshots(self) -> list[SnapshotInfo]:
        return self.inner.snapshots()

    def snapshot(self, snapshot_id: str) -> Manifest:
        return self.inner.snapshot(snapshot_id)

    def remove_snapshot(self, snapshot_id: str) -> str:
        return self.inner.remove_snapshot(snapshot_id)

    def close(self) -> None:
        self.inner.close()


def copy_with_manifest(src: Path, dst: Path, manifest: Manifest) -> Path:
    """Write ``dst``: ``manifest`` with the blobs it names, taken from ``src``."""
    with Archive(src) as source, Archive(dst, "w") as target:
        for bid in sorted(manifest.blob_ids()):
            target.put_raw(source.get_raw(bid))
        target.add_snapshot(manifest)
    return dst


def only_snapshot(path: Path) -> Manifest:
    with Archive(path) as archive:
        (info,) = archive.snapshots()
        return archive.snapshot(info.id)


def needs_a_ghost(tmp_path: Path, data: bytes) -> Path:
    """An archive with an object, and ``data.txt`` holding ``data``, whose
    manifest says the object needs :data:`GHOST` 9.9 (missing everywhere)."""
    import snapkit

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "data.txt").write_bytes(data)
    original = tmp_path / "original.snap"
    snapkit.capture({"answer": {"value": 42}}, files=ws, to=original).close()
    manifest = only_snapshot(original)
    libraries = dataclasses.replace(
        manifest.libraries,
        distributions=[*manifest.libraries.distributions, Distribution(GHOST, "9.9")],
        required=sorted([*manifest.libraries.required, GHOST]),
    )
    edited = dataclasses.replace(manifest, libraries=libraries)
    return copy_with_manifest(original, tmp_path / "ghost.snap", edited)
