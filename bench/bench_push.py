"""Push and pull of a workspace over loopback, next to restic, in one run.

Not a test: run it by hand on a quiet machine (restic from Debian's
``restic`` package must be on PATH).

    python bench/bench_push.py [--size-mib 1024] [--files 16] [--repeat 2]

It writes a workspace of SIZE MiB in FILES files of mixed data (the same
random / text-like / float64 mix as bench_store.py), then times, each as a
child process and each against fresh state:

* push: ``snapkit create WS --push`` to a ``snapkit server serve`` child on
  a free loopback port with an empty data folder (walk, chunk, compress,
  ask what is missing, upload, commit), with an empty stat cache;
* pull: ``snapkit restore ID --into DIR`` from that server (download,
  verify, write files);
* ``restic backup WS`` into a new local repository, and ``restic restore
  latest --target DIR`` from it.

Each figure is the best of ``--repeat`` runs; the page cache is warm for
both tools alike (the workspace is read once before timing). Results go to
stdout as a table and to bench/out/ as JSON, with the ratio of each snapkit
figure to its restic peer (above 1: snapkit is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench_store import mixed_data  # type: ignore[import-not-found]

from snapkit._version import __version__

MIB = 1024 * 1024
SNAPKIT = [sys.executable, "-m", "snapkit"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_workspace(root: Path, size: int, files: int) -> None:
    """``files`` files of mixed data adding up to ``size`` bytes."""
    root.mkdir(parents=True)
    each = size // files
    for i in range(files):
        (root / f"part-{i:03d}.bin").write_bytes(mixed_data(each, seed=1000 + i))


def read_all(root: Path) -> None:
    """Warm the page cache so neither tool pays for the first read."""
    for path in root.iterdir():
        with open(path, "rb") as handle:
            while handle.read(8 * MIB):
                pass


@contextmanager
def server(data: Path) -> Iterator[dict[str, str]]:
    """A ``snapkit server serve`` child with one user; yields its client env."""
    answer = subprocess.run(
        [*SNAPKIT, "server", "adduser", "bench", "--data", str(data), "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    token = json.loads(answer.stdout)["token"]
    port = free_port()
    child = subprocess.Popen(
        [*SNAPKIT, "server", "serve", "--data", str(data), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if child.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("snapkit server did not start") from None
                time.sleep(0.1)
        yield {
            **os.environ,
            "SNAPKIT_URL": f"http://127.0.0.1:{port}",
            "SNAPKIT_TOKEN": token,
        }
    finally:
        child.terminate()
        child.wait(timeout=30)


def quietly(command: list[str], env: dict[str, str]) -> Callable[[], None]:
    """A step that runs ``command`` to completion, failing loudly."""

    def step() -> None:
        subprocess.run(command, env=env, check=True, capture_output=True)

    return step


def timed(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def folder_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def same_tree(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    if names != sorted(p.name for p in b.iterdir()):
        return False
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    restic = shutil.which("restic")
    if restic is None:
        print("restic is needed for the comparison: apt-get install restic")
        return 2

    size = args.size_mib * MIB
    best: dict[str, float] = {}
    stored: dict[str, int] = {}

    def record(key: str, seconds: float) -> None:
        best[key] = min(best.get(key, float("inf")), seconds)

    with tempfile.TemporaryDirectory(prefix="snapkit-bench-push-") as tmp:
        base = Path(tmp)
        ws = base / "ws"
        make_workspace(ws, size, args.files)
        size = folder_size(ws)

        for attempt in range(args.repeat):
            read_all(ws)
            run = base / f"run{attempt}"
            run.mkdir()

            # snapkit: push straight from the workspace, then restore.
            with server(run / "data") as env:
                env["SNAPKIT_CACHE_DIR"] = str(run / "statcache")
                env["SNAPKIT_CONFIG"] = str(run / "config.toml")
                push = [*SNAPKIT, "create", str(ws), "--push", "--json"]
                start = time.perf_counter()
                answer = subprocess.run(
                    push, env=env, check=True, capture_output=True, text=True
                )
                record("snapkit push", time.perf_counter() - start)
                snapshot_id = json.loads(answer.stdout)["id"]
                into = run / "snapkit-restored"
                pull = [*SNAPKIT, "restore", snapshot_id, "--into", str(into)]
                record("snapkit pull", timed(quietly(pull, env)))
                assert same_tree(ws, into), "snapkit restored different bytes"
                stored["snapkit"] = folder_size(run / "data" / "packs")
                shutil.rmtree(into)

            # restic: a new local repository each time.
            renv = {
                **os.environ,
                "RESTIC_REPOSITORY": str(run / "restic-repo"),
                "RESTIC_PASSWORD": "bench",
                "RESTIC_CACHE_DIR": str(run / "restic-cache"),
            }
            subprocess.run(
                [restic, "init", "-q"], env=renv, check=True, capture_output=True
            )
            read_all(ws)
            target = run / "restic-restored"
            backup = [restic, "backup", "-q", str(ws)]
            restore = [restic, "restore", "-q", "latest", "--target", str(target)]
            record("restic backup", timed(quietly(backup, renv)))
            record("restic restore", timed(quietly(restore, renv)))
            restored = target / ws.relative_to("/")
            assert same_tree(ws, restored), "restic restored different bytes"
            stored["restic"] = folder_size(run / "restic-repo")
            shutil.rmtree(run)

    version = subprocess.run(
        [restic, "version"], capture_output=True, text=True
    ).stdout.strip()
    rate = {k: size / MIB / v for k, v in best.items()}
    ratios = {
        "push / restic backup": rate["snapkit push"] / rate["restic backup"],
        "pull / restic restore": rate["snapkit pull"] / rate["restic restore"],
    }
    print(f"workspace: {size / MIB:.0f} MiB in {args.files} files; {version}")
    print(f"{'step':<16}{'seconds':>10}{'MiB/s':>10}")
    for key in ("snapkit push", "restic backup", "snapkit pull", "restic restore"):
        print(f"{key:<16}{best[key]:>10.2f}{rate[key]:>10.1f}")
    for key, value in ratios.items():
        print(f"{key}: {value:.2f}")
    print(
        f"stored: snapkit {stored['snapkit'] / MIB:.0f} MiB, "
        f"restic {stored['restic'] / MIB:.0f} MiB"
    )

    out_dir = Path(__file__).parent / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "bench_push.json").write_text(
        json.dumps(
            {
                "snapkit": __version__,
                "restic": version,
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "size": size,
                "files": args.files,
                "seconds": best,
                "mib_per_s": rate,
                "ratios": ratios,
                "stored_bytes": stored,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
