"""Write tests/golden/v1.snap, the golden archive of format version 1.

Run it only when adding a new format version's golden file; never regenerate
v1.snap itself. tests/store/test_golden.py hard-codes what this script wrote,
so later versions of snapkit must keep reading these exact bytes.

    python tests/golden/make_golden.py
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from snapkit.store.archive import Archive
from snapkit.workspace.manifest import (
    Distribution,
    FileEntry,
    Libraries,
    Manifest,
)

HERE = Path(__file__).parent

#: Compresses well: stored as a zstd frame.
README = b"# iris\n\nA reference data set and a fitted model.\n" * 12
#: Random bytes do not compress: stored raw.
NOISE = random.Random(1).randbytes(700)
#: Small CSV shared by both snapshots.
IRIS = b"sepal_length,sepal_width,species\n" + b"5.1,3.5,setosa\n" * 30


def refs(data: bytes) -> list[tuple[str, int]]:
    return [(hashlib.sha256(data).hexdigest(), len(data))]


def file(path: str, data: bytes, mtime_ns: int) -> FileEntry:
    return FileEntry(path, "file", 0o644, len(data), mtime_ns, refs(data))


def main() -> None:
    libraries = Libraries(
        python_version="3.11.7",
        implementation="CPython",
        platform="Linux",
        machine="x86_64",
        cloudpickle_version="3.1.0",
        snapkit_version="0.1.0",
        distributions=[Distribution("numpy", "2.1.0", None)],
        required=["numpy"],
        session_modules=["numpy"],
    )
    first = Manifest(
        name="golden one",
        created="2026-01-01T00:00:00.000000Z",
        host="golden-host",
        tags=["v1"],
        libraries=libraries,
        files=[
            file("README.md", README, 1_767_225_600_000_000_000),
            file("data/iris.csv", IRIS, 1_767_225_601_000_000_000),
            FileEntry("data", "dir", 0o755),
        ],
    )
    second = Manifest(
        name="golden two",
        created="2026-01-02T00:00:00.000000Z",
        host="golden-host",
        libraries=libraries,
        files=[
            file("data/iris.csv", IRIS, 1_767_225_601_000_000_000),
            file("noise.bin", NOISE, 1_767_312_000_000_000_000),
            FileEntry("latest", "symlink", 0o777, target="data/iris.csv"),
        ],
    )
    path = HERE / "v1.snap"
    with Archive(path, "w") as archive:
        for data in (README, IRIS, NOISE):
            archive.put(data)
        for manifest in (first, second):
            print(manifest.name, archive.add_snapshot(manifest))
    for data in (README, IRIS, NOISE):
        print(hashlib.sha256(data).hexdigest(), len(data))
    print("file", hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size)


if __name__ == "__main__":
    main()
