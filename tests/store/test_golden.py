"""The golden archive of format version 1 must open in every later snapkit.

Every value below was written down from tests/golden/make_golden.py's run
that produced v1.snap. Never regenerate the file to make this test pass: a
failure here means a change broke reading archives users already have.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from snapkit.store.archive import Archive
from snapkit.store.codec import Codec
from snapkit.workspace.manifest import Distribution, FileEntry

GOLDEN = Path(__file__).parent.parent / "golden" / "v1.snap"
FILE_SHA256 = "ea605ebcc3449b3fe42cc0d3545b14d76b48ef357631944ac334a1962a72fb72"

FIRST = "2f8987cf936b96a6e77c3f753852b9d386b89db53c17c650517152b51d2ff6d1"
SECOND = "da564ae5cdf67142b15225914ee6f9d8a1a1b45664f3e4027342c7724577cad5"
README_ID = "c5ca892d37165a9a20baa9a5d8faa736519b25a69cf75eb72456e7a546db89aa"
IRIS_ID = "52ddc65d18af1c7640e05abaead0a2f1d00cc0afc7b5357927c0addc0ca6f9d2"
NOISE_ID = "8b051efc95c48efed06cad38c9642555021112f3107a09b1b6a1366792f2152d"

README = b"# iris\n\nA reference data set and a fitted model.\n" * 12
IRIS = b"sepal_length,sepal_width,species\n" + b"5.1,3.5,setosa\n" * 30

#: [id, offset, stored length, raw length, codec] of every record.
BLOB_ENTRIES = [
    [README_ID, 16, 68, 588, Codec.ZSTD],
    [IRIS_ID, 84, 60, 483, Codec.ZSTD],
    [NOISE_ID, 144, 700, 700, Codec.RAW],
]
SNAPSHOT_ENTRIES = [
    [FIRST, 844, 442, 520, Codec.ZSTD],
    [SECOND, 1286, 445, 536, Codec.ZSTD],
]


def test_golden_file_is_untouched() -> None:
    data = GOLDEN.read_bytes()
    assert hashlib.sha256(data).hexdigest() == FILE_SHA256
    assert data[:16] == b"SNAPKIT\x00\x00\x01\x01\x00\x00\x00\x00\x00"


def test_golden_index() -> None:
    with Archive(GOLDEN) as archive:
        assert archive._old is not None
        assert [e.wire() for e in archive._old.blobs.values()] == BLOB_ENTRIES
        assert [e.wire() for e in archive._old.snapshots.values()] == (SNAPSHOT_ENTRIES)


def test_golden_verifies() -> None:
    with Archive(GOLDEN) as archive:
        assert archive.verify() == []


def test_golden_snapshots() -> None:
    with Archive(GOLDEN) as archive:
        infos = archive.snapshots()
        assert [(s.id, s.name, s.created) for s in infos] == [
            (FIRST, "golden one", "2026-01-01T00:00:00.000000Z"),
            (SECOND, "golden two", "2026-01-02T00:00:00.000000Z"),
        ]
        assert infos[0].tags == ["v1"] and infos[1].tags == []

        first = archive.snapshot(FIRST[:8])
        assert first.id == FIRST
        assert first.host == "golden-host"
        assert first.objects == [] and first.skipped == []
        assert first.libraries.python_version == "3.11.7"
        assert first.libraries.distributions == [Distribution("numpy", "2.1.0")]
        assert first.libraries.required == ["numpy"]
        assert first.files == [
            FileEntry(
                "README.md",
                "file",
                0o644,
                588,
                1_767_225_600_000_000_000,
                [(README_ID, 588)],
            ),
            FileEntry(
                "data/iris.csv",
                "file",
                0o644,
                483,
                1_767_225_601_000_000_000,
                [(IRIS_ID, 483)],
            ),
            FileEntry("data", "dir", 0o755),
        ]

        second = archive.snapshot(SECOND)
        assert [f.path for f in second.files] == [
            "data/iris.csv",
            "noise.bin",
            "latest",
        ]
        assert second.files[1].blobs == [(NOISE_ID, 700)]
        assert second.files[2].kind == "symlink"
        assert second.files[2].target == "data/iris.csv"
        assert second.raw_size == 483 + 700


def test_golden_blobs() -> None:
    with Archive(GOLDEN) as archive:
        assert archive.get(README_ID) == README
        assert archive.get(IRIS_ID) == IRIS
        noise = archive.get(NOISE_ID)
        assert len(noise) == 700
        assert noise[:16].hex() == "f5b165224a58b791df6af1d8303e61cd"
        assert archive.get_raw(NOISE_ID).codec == Codec.RAW
        assert archive.get_raw(README_ID).codec == Codec.ZSTD
