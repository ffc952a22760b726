"""Second capture of an unchanged working directory into the same local store.

Builds a working directory of ``--files`` files of ``--mib`` MiB each (half
random bytes, half text, so zstd has work of both kinds), sets every mtime
10 s in the past (the stat cache never trusts a file changed within its racy
window), then captures it into a new local store three times:

1. first: every file is read, cut, hashed, compressed and stored;
2. second, unchanged: files are recognised from the stat cache;
3. third, one file rewritten: only that file is read again.

Target: second < 0.1 x first. Usage:
``python bench/bench_recapture.py [--files 64] [--mib 16]``.
Writes ``bench/out/recapture.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import snapkit
from snapkit import CaptureReport


def build(root: Path, files: int, mib: int) -> None:
    rng = random.Random(0)
    words = [rng.randbytes(rng.randint(2, 9)).hex().encode() for _ in range(500)]
    half = mib * 2**20 // 2
    for i in range(files):
        text = bytearray()
        while len(text) < half:
            text += b" ".join(rng.choices(words, k=64)) + b"\n"
        path = root / f"part{i // 16}" / f"file{i:03}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(os.urandom(half) + bytes(text[:half]))


def age(root: Path, seconds: float = 10.0) -> None:
    when = time.time() - seconds
    for path in root.rglob("*"):
        os.utime(path, (when, when))


def timed_capture(ws: Path, store: Path) -> dict[str, Any]:
    report = CaptureReport()
    started = time.perf_counter()
    snapkit.capture(files=ws, to=store, report=report).close()
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 3),
        "files": report.files,
        "files_from_cache": report.files_from_cache,
        "raw_bytes": report.raw_bytes,
        "new_bytes": report.new_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--mib", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="snapkit-bench-") as tmp:
        base = Path(tmp)
        os.environ["SNAPKIT_CACHE_DIR"] = str(base / "cache")
        ws, store = base / "ws", base / "store"
        ws.mkdir()
        store.mkdir()
        build(ws, args.files, args.mib)
        age(ws)

        first = timed_capture(ws, store)
        second = timed_capture(ws, store)
        changed = next(iter(sorted(ws.rglob("*.bin"))))
        data = bytearray(changed.read_bytes())
        data[len(data) // 2] ^= 0xFF
        changed.write_bytes(bytes(data))
        when = time.time() - 8  # old enough that only its new stat counts
        os.utime(changed, (when, when))
        third = timed_capture(ws, store)

    total = args.files * args.mib * 2**20
    results = {
        "total_bytes": total,
        "first": first,
        "second_unchanged": second,
        "third_one_changed": third,
        "ratio_second_to_first": round(second["seconds"] / first["seconds"], 4),
        "ratio_third_to_first": round(third["seconds"] / first["seconds"], 4),
    }
    print(f"working dir: {args.files} files x {args.mib} MiB = {total / 2**30:.2f} GiB")
    print(f"{'capture':<22} {'seconds':>8} {'from cache':>11} {'new MiB':>9}")
    for label, row in (
        ("first", first),
        ("second (unchanged)", second),
        ("third (1 file changed)", third),
    ):
        print(
            f"{label:<22} {row['seconds']:>8.2f} "
            f"{row['files_from_cache']:>5}/{row['files']:<5} "
            f"{row['new_bytes'] / 2**20:>9.1f}"
        )
    print(
        f"second / first = {results['ratio_second_to_first']:.4f} (target < 0.1); "
        f"third / first = {results['ratio_third_to_first']:.4f}"
    )
    out_dir = Path(__file__).resolve().parent / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "recapture.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
