"""Second capture of an unchanged working directory into the same repository.

Builds a working directory of ``--files`` files of ``--mib`` MiB each (half
random bytes, half text, so zstd has work of both kinds), sets every mtime
10 s in the past (the stat cache never trusts a file changed within its racy
window), then captures it three times into a new repository (``--to store``: a local
store folder; ``--to server``: an embedded ``snapkit server`` on loopback,
through the HTTP client):

1. first: every file is read, cut, hashed, compressed and stored;
2. second, unchanged: files are recognised from the stat cache;
3. third, one file rewritten: only that file is read again.

Each capture runs in this process through ``snapkit.capture`` (what a
notebook does); with ``--cli`` each runs as a fresh ``snapkit create``
child process instead, so interpreter start-up, imports and the library
metadata cache on disk are part of every figure.

Target: second < 0.1 x first. Usage:
``python bench/bench_recapture.py [--files 64] [--mib 16] [--to store|server] [--cli]``.
Writes ``bench/out/recapture-<to>[-cli].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


Capture = Callable[[Path], dict[str, Any]]


def in_process(to: Any) -> Capture:
    def run(ws: Path) -> dict[str, Any]:
        report = CaptureReport()
        started = time.perf_counter()
        snapkit.capture(files=ws, to=to, report=report).close()
        seconds = time.perf_counter() - started
        return {
            "seconds": round(seconds, 3),
            "files": report.files,
            "files_from_cache": report.files_from_cache,
            "raw_bytes": report.raw_bytes,
            "new_bytes": report.new_bytes,
        }

    return run


def child_process(target: list[str], env: dict[str, str]) -> Capture:
    def run(ws: Path) -> dict[str, Any]:
        command = [sys.executable, "-m", "snapkit", "create", str(ws), *target]
        started = time.perf_counter()
        answer = subprocess.run(
            [*command, "--json"], env=env, check=True, capture_output=True, text=True
        )
        seconds = time.perf_counter() - started
        doc = json.loads(answer.stdout)
        return {
            "seconds": round(seconds, 3),
            "files": doc.get("files", 0),
            "files_from_cache": doc.get("files_from_cache", 0),
            "raw_bytes": doc.get("raw_size", 0),
            "new_bytes": doc.get("new_bytes", 0),
        }

    return run


@contextmanager
def destination(kind: str, base: Path, cli: bool) -> Iterator[Capture]:
    env = dict(os.environ)
    if kind == "store":
        store = base / "store"
        store.mkdir()
        yield child_process(["-o", str(store)], env) if cli else in_process(store)
        return
    from snapkit.remote.client import Client
    from snapkit.server import EmbeddedServer

    with EmbeddedServer(base / "server-data") as server:
        token = server.add_user("bench")
        if cli:
            env.update(SNAPKIT_URL=server.url, SNAPKIT_TOKEN=token)
            yield child_process(["--push"], env)
            return
        with Client(server.url, token, progress=False) as client:
            yield in_process(client)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--mib", type=int, default=16)
    parser.add_argument("--to", choices=["store", "server"], default="store")
    parser.add_argument("--cli", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="snapkit-bench-") as tmp:
        base = Path(tmp)
        os.environ["SNAPKIT_CACHE_DIR"] = str(base / "cache")
        ws = base / "ws"
        ws.mkdir()
        build(ws, args.files, args.mib)
        age(ws)
        with destination(args.to, base, args.cli) as timed_capture:
            first = timed_capture(ws)
            second = timed_capture(ws)
            changed = next(iter(sorted(ws.rglob("*.bin"))))
            data = bytearray(changed.read_bytes())
            data[len(data) // 2] ^= 0xFF
            changed.write_bytes(bytes(data))
            when = time.time() - 8  # old enough that only its new stat counts
            os.utime(changed, (when, when))
            third = timed_capture(ws)

    total = args.files * args.mib * 2**20
    results = {
        "to": args.to,
        "cli": args.cli,
        "total_bytes": total,
        "first": first,
        "second_unchanged": second,
        "third_one_changed": third,
        "ratio_second_to_first": round(second["seconds"] / first["seconds"], 4),
        "ratio_third_to_first": round(third["seconds"] / first["seconds"], 4),
    }
    how = "snapkit create child processes" if args.cli else "snapkit.capture"
    print(
        f"working dir: {args.files} files x {args.mib} MiB = {total / 2**30:.2f} GiB"
        f" into a {args.to}, via {how}"
    )
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
    name = f"recapture-{args.to}{'-cli' if args.cli else ''}.json"
    (out_dir / name).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
