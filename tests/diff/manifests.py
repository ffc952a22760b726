"""Iris-like manifests built by hand, so diff and audit tests need no capture."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from snapkit.workspace.manifest import (
    BlobRef,
    Distribution,
    FileEntry,
    Libraries,
    Manifest,
    ObjectEntry,
)

IRIS_CSV = b"".join(
    f"{5.0 + i / 100:.2f},{3.0 + i / 200:.2f},1.4,0.2,setosa\n".encode()
    for i in range(150)
)


def refs(*parts: bytes) -> list[BlobRef]:
    """Blob references for ``parts``, one blob each."""
    return [(hashlib.sha256(p).hexdigest(), len(p)) for p in parts]


def file_entry(path: str, data: bytes, mode: int = 0o100644) -> FileEntry:
    return FileEntry(
        path,
        "file",
        mode,
        len(data),
        1_700_000_000_000_000_000,
        refs(data),
        stored_size=len(data) // 2,
    )


def iris_manifest(
    csv: bytes = IRIS_CSV, model: bytes = b"model-v1" * 200, sklearn: str = "1.4.0"
) -> Manifest:
    frame_buffers = [refs(csv[:2000], csv[2000:])]
    return Manifest(
        name="Iris Snapshot",
        created="2026-01-01T00:00:00.000000Z",
        host="lab",
        objects=[
            ObjectEntry(
                "iris",
                "pandas.core.frame.DataFrame",
                refs(b"frame-header"),
                frame_buffers,
                stored_size=len(csv) // 3,
                summary={"shape": [150, 5], "columns": ["sl", "sw", "pl", "pw", "y"]},
            ),
            ObjectEntry(
                "model",
                "sklearn.linear_model._logistic.LogisticRegression",
                refs(model),
                stored_size=len(model) // 4,
            ),
        ],
        libraries=Libraries(
            python_version="3.11.7",
            implementation="CPython",
            distributions=[
                Distribution("numpy", "1.26.4"),
                Distribution("pandas", "2.2.0"),
                Distribution("scikit-learn", sklearn),
            ],
            required=["numpy", "pandas", "scikit-learn"],
        ),
        files=[
            FileEntry("data", "dir", 0o40755),
            file_entry("data/iris.csv", csv),
            file_entry("train.py", b"import sklearn\nprint('train')\n"),
        ],
    )


def edited(m: Manifest, **changes: Any) -> Manifest:
    return replace(m, **changes)


def iris_pair() -> tuple[Manifest, Manifest]:
    """Snapshot A, then B after editing the CSV, retraining, upgrading sklearn."""
    a = iris_manifest()
    csv = IRIS_CSV.replace(b"5.10,3.05", b"5.99,3.05")
    assert csv != IRIS_CSV
    b = iris_manifest(csv=IRIS_CSV, model=b"model-v2" * 200, sklearn="1.5.0")
    # The CSV file changed on disk; the DataFrame object was not reloaded.
    b = replace(
        b,
        files=[
            f if f.path != "data/iris.csv" else file_entry(f.path, csv + b"x")
            for f in b.files
        ],
    )
    return a, b


def chunked(data: bytes, size: int) -> Iterable[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))
