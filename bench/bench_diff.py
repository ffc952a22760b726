"""Benchmark: diff two manifests of 100,000 files each, 1 % of them changed.

Run: python bench/bench_diff.py [--files N] [--changed-share 0.01]
Target: under 2 s on a laptop. Prints the time of each step.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from dataclasses import replace

from snapkit.diff import diff
from snapkit.workspace.manifest import FileEntry, Manifest


def blob(tag: str) -> str:
    return hashlib.sha256(tag.encode()).hexdigest()


def build(n: int) -> Manifest:
    files = [
        FileEntry(
            f"data/part{i // 1000:03d}/file{i:06d}.csv",
            "file",
            0o100644,
            4096,
            1_700_000_000_000_000_000,
            [(blob(f"f{i}"), 4096)],
            stored_size=1500,
        )
        for i in range(n)
    ]
    return Manifest(name="bench", created="2026-01-01T00:00:00.000000Z", files=files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--changed-share", type=float, default=0.01)
    args = parser.parse_args()

    t0 = time.perf_counter()
    a = build(args.files)
    step = max(1, round(1 / args.changed_share))
    files = [
        replace(f, size=5000, blobs=[(blob(f"g{i}"), 5000)]) if i % step == 0 else f
        for i, f in enumerate(a.files)
    ]
    b = replace(a, files=files)
    t1 = time.perf_counter()
    d = diff(a, b)
    t2 = time.perf_counter()
    doc = d.to_json()
    text = d.render()
    t3 = time.perf_counter()

    print(f"built 2 manifests of {args.files:,} files in {t1 - t0:.2f} s")
    print(
        f"diff: {len(d.files):,} files changed, {d.totals.blobs_shared:,} blobs "
        f"shared, upload ~{d.totals.upload_bytes:,} bytes: {t2 - t1:.3f} s"
    )
    print(f"render text ({len(text):,} chars) and JSON: {t3 - t2:.3f} s")
    print(f"total diff + output: {t3 - t1:.3f} s (target < 2 s)")
    assert len(doc["files"]) == len(range(0, args.files, step))


if __name__ == "__main__":
    main()
