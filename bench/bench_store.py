"""Store throughput next to the raw speed of the zstd tool, in one run.

Not a test: run it by hand on a quiet machine.

    python bench/bench_store.py [--size-mib 256] [--repeat 3] [--level 3]

It writes SIZE MiB of mixed data (a third random, a third text-like, a third
float64 array bytes) to a temporary folder, then times:

* put: BlobWriter.write_file into a fresh Archive, add_snapshot, close
  (index, fsync and rename included);
* get: reopen the archive and read every chunk back through BlobReader,
  decoded and verified against its id;
* zstd -LEVEL -T2 compressing the same file to /dev/null, and zstd -d
  decompressing its output to /dev/null (wall time of the subprocess).

The runs are interleaved (put, get, zstd, zstd -d, then again, ``--repeat``
rounds), so both sides of a ratio see the same machine. Each figure in the
table is the best of its runs; the median and range of the round-by-round
ratios follow it. The target is put and get at 0.8 or more of the zstd
tool's speed. Results go to stdout as a table and to
bench/out/ as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from snapkit._version import __version__
from snapkit.store.archive import Archive
from snapkit.store.chunker import BlobReader, BlobWriter, default_workers
from snapkit.workspace.manifest import FileEntry, Manifest

MIB = 1024 * 1024
TARGET = 0.8


def mixed_data(size: int, seed: int = 2026) -> bytes:
    """Return ``size`` bytes: random, text-like and float64 thirds."""
    third = size // 3
    rng = random.Random(seed)
    random_part = rng.randbytes(third)

    # Text-like: 4 KiB slices at random offsets of a 4 MiB block of CSV-ish
    # lines, so it compresses like text but chunks do not repeat.
    words = [rng.randbytes(rng.randint(1, 6)).hex().encode() for _ in range(2000)]
    block = bytearray()
    while len(block) < 4 * MIB:
        block += b",".join(rng.choices(words, k=8)) + b"\n"
    pieces = []
    for _ in range(third // 4096 + 1):
        at = rng.randrange(len(block) - 4096)
        pieces.append(block[at : at + 4096])
    text_part = b"".join(pieces)[:third]

    gen = np.random.default_rng(seed)
    floats = np.cumsum(gen.normal(0.0, 1.0, (size - 2 * third) // 8 + 1))
    float_part = floats.tobytes()[: size - 2 * third]
    return random_part + text_part + float_part


Op = tuple[Callable[[], None], Callable[[], None] | None]


def interleaved(repeat: int, ops: dict[str, Op]) -> dict[str, list[float]]:
    """Time each op once per round, ``repeat`` rounds; return the times.

    Rounds interleave the ops (put, get, zstd, zstd -d, put, ...) so that
    both sides of a ratio see the same machine: on a shared VM the speed of
    the zstd tool alone drifts by 20 % from one minute to the next. An op's
    setup, if any, runs untimed before it.
    """
    times: dict[str, list[float]] = {name: [] for name in ops}
    for _ in range(repeat):
        for name, (run, setup) in ops.items():
            if setup is not None:
                setup()
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--level", type=int, default=3)
    args = parser.parse_args()

    zstd = shutil.which("zstd")
    if zstd is None:
        print(
            "the zstd command-line tool is needed for the comparison", file=sys.stderr
        )
        return 2

    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="snapkit-bench-") as tmp:
        folder = Path(tmp)
        source = folder / "data.bin"
        with open(source, "wb") as f:
            f.write(mixed_data(size))
            # On disk before any timing starts, so the kernel's writeback of
            # the source does not compete with the runs (both sides read it
            # from the page cache).
            os.fsync(f.fileno())
        archive_path = folder / "bench.snap"
        stored: dict[str, int] = {}
        refs_holder: list[list[tuple[str, int]]] = []

        def remove_archive() -> None:
            # Untimed: freeing the last run's blocks is not part of a put.
            archive_path.unlink(missing_ok=True)

        def put() -> None:
            with Archive(archive_path, "w") as archive:
                with BlobWriter(archive, level=args.level) as writer:
                    refs = writer.write_file(source).refs
                entry = FileEntry("data.bin", "file", 0o644, size, 0, refs)
                archive.add_snapshot(
                    Manifest("bench", "2026-01-01T00:00:00Z", files=[entry])
                )
            refs_holder[:] = [refs]
            stored["archive"] = archive_path.stat().st_size

        def get() -> None:
            got = 0
            with Archive(archive_path) as archive, BlobReader(archive) as reader:
                for chunk in reader.iter_chunks(refs_holder[0], "data.bin"):
                    got += len(chunk)
            assert got == size

        zst = folder / "data.bin.zst"

        def zstd_compress() -> None:
            with open(os.devnull, "wb") as sink:
                subprocess.run(
                    [zstd, f"-{args.level}", "-T2", "-q", "-c", str(source)],
                    stdout=sink,
                    check=True,
                )

        def zstd_decompress() -> None:
            with open(os.devnull, "wb") as sink:
                subprocess.run(
                    [zstd, "-d", "-q", "-c", str(zst)], stdout=sink, check=True
                )

        subprocess.run(
            [zstd, f"-{args.level}", "-T2", "-q", "-f", str(source), "-o", str(zst)],
            check=True,
        )
        stored["zstd"] = zst.stat().st_size

        times = interleaved(
            args.repeat,
            {
                "put": (put, remove_archive),
                "get": (get, None),
                "zstd_compress": (zstd_compress, None),
                "zstd_decompress": (zstd_decompress, None),
            },
        )

    seconds = {k: min(v) for k, v in times.items()}
    speed = {k: size / MIB / v for k, v in seconds.items()}
    ratios = {
        "put": speed["put"] / speed["zstd_compress"],
        "get": speed["get"] / speed["zstd_decompress"],
    }
    # The same ratios taken round by round (each round's own zstd run).
    paired = {
        "put": [
            z / p for p, z in zip(times["put"], times["zstd_compress"], strict=True)
        ],
        "get": [
            z / g for g, z in zip(times["get"], times["zstd_decompress"], strict=True)
        ],
    }
    print(
        f"snapkit {__version__}, {args.size_mib} MiB mixed data, level {args.level}, "
        f"{default_workers()} workers, {os.cpu_count()} CPUs, "
        f"best of {args.repeat} interleaved rounds"
    )
    print(f"{'operation':<22}{'seconds':>9}{'MiB/s':>9}{'ratio':>8}{'target':>8}")
    rows = [
        ("put (snapkit)", "put", ratios["put"]),
        ("zstd -3 -T2", "zstd_compress", None),
        ("get (snapkit)", "get", ratios["get"]),
        ("zstd -d", "zstd_decompress", None),
    ]
    for label, key, ratio in rows:
        shown = f"{ratio:8.2f}" if ratio is not None else f"{'':8}"
        goal = f"{TARGET:8.2f}" if ratio is not None else ""
        print(f"{label:<22}{seconds[key]:9.3f}{speed[key]:9.1f}{shown}{goal}")
    for key in ("put", "get"):
        values = sorted(paired[key])
        print(
            f"{key} ratio round by round: median {statistics.median(values):.2f}, "
            f"range {values[0]:.2f}-{values[-1]:.2f}"
        )
    print(
        f"stored: archive {stored['archive'] / MIB:.1f} MiB, "
        f"zstd {stored['zstd'] / MIB:.1f} MiB of {args.size_mib} MiB"
    )

    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    report = {
        "snapkit": __version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "workers": default_workers(),
        "size_mib": args.size_mib,
        "level": args.level,
        "repeat": args.repeat,
        "seconds": seconds,
        "rounds": times,
        "paired_ratios": paired,
        "mib_per_s": speed,
        "ratios": ratios,
        "target": TARGET,
        "stored_bytes": stored,
    }
    name = time.strftime("bench_store-%Y%m%dT%H%M%S.json")
    (out / name).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
