"""Fixtures for the store tests: small archives and local stores on disk."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from strategies import file_manifest, make_bytes

from snapkit.store.archive import Archive
from snapkit.store.codec import Codec
from snapkit.store.local import LocalStore


@dataclass
class SmallArchive:
    """A few-KiB archive with two snapshots, and what it must read back as."""

    path: Path
    blobs: dict[str, bytes]
    codecs: dict[str, Codec]
    snapshot_ids: list[str]


def build_small_archive(path: Path) -> SmallArchive:
    """Write two snapshots sharing one blob; raw and zstd blobs both present."""
    contents = {
        "notes.txt": b"snapkit keeps every byte checked. " * 40,
        "noise.bin": make_bytes(7, 600, "random"),
        "tiny.txt": b"hi\n",
        "table.csv": b"a,b,c\n" + b"1,2,3\n" * 120,
    }
    blobs: dict[str, bytes] = {}
    codecs: dict[str, Codec] = {}
    refs: dict[str, list[tuple[str, int]]] = {}
    with Archive(path, "w") as archive:
        for name, data in contents.items():
            blob = archive.put(data)
            blobs[blob.id] = data
            codecs[blob.id] = blob.codec
            refs[name] = [(blob.id, len(data))]
        first = file_manifest("first", {k: refs[k] for k in ("notes.txt", "tiny.txt")})
        second = file_manifest(
            "second",
            {k: refs[k] for k in ("notes.txt", "noise.bin", "table.csv")},
            created="2026-01-03T00:00:00.000000Z",
        )
        ids = [archive.add_snapshot(first), archive.add_snapshot(second)]
    return SmallArchive(path, blobs, codecs, ids)


@pytest.fixture
def small_archive(tmp_path: Path) -> SmallArchive:
    return build_small_archive(tmp_path / "small.snap")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    repo = LocalStore(tmp_path / "store")
    yield repo
    repo.close()
