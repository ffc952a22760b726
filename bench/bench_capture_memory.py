"""Peak memory of capturing a namespace holding one large float64 array.

Each method runs in its own fresh child process: the child imports the
method's libraries, allocates the array, then a sampler thread records the
process's RSS every 5 ms while the method runs. The figure is the peak RSS
above the RSS just before the method started, as a percentage of the array's
size. Methods:

* ``snapkit``: ``snapkit.capture(namespace=..., include=["arr"], to=X.snap)``;
* ``pickle+zstd``: ``pickle.dumps(arr, protocol=5)`` then zstd level 3 to a
  file, the hand-made way;
* ``dill``: ``dill.dump_session`` to a file.

Usage: ``python bench/bench_capture_memory.py [--gib 1.0] [--only NAME]``.
Writes ``bench/out/capture_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
METHODS = ("snapkit", "pickle+zstd", "dill")

CHILD = textwrap.dedent(
    """
    import json, os, sys, threading, time
    import numpy as np
    import psutil

    method, n, workdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    # Libraries are imported before the baseline: their code is not the cost
    # being measured.
    import importlib
    libs = {"snapkit": ["snapkit"], "pickle+zstd": ["pickle", "zstandard"],
            "dill": ["dill"]}[method]
    mods = {name: importlib.import_module(name) for name in libs}
    arr = np.random.default_rng(0).random(n)
    proc = psutil.Process()
    baseline = proc.memory_info().rss
    peak = baseline
    stop = threading.Event()

    def sample():
        global peak
        while not stop.is_set():
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    if method == "snapkit":
        out = os.path.join(workdir, "bench.snap")
        mods["snapkit"].capture(namespace=globals(), include=["arr"], to=out).close()
    elif method == "pickle+zstd":
        out = os.path.join(workdir, "bench.pkl.zst")
        data = mods["pickle"].dumps(arr, protocol=5)
        with open(out, "wb") as f:
            f.write(mods["zstandard"].ZstdCompressor(level=3).compress(data))
        del data
    elif method == "dill":
        out = os.path.join(workdir, "bench.dill")
        mods["dill"].dump_session(out)
    else:
        raise SystemExit(f"unknown method {method}")
    seconds = time.perf_counter() - started
    stop.set()
    sampler.join()
    peak = max(peak, proc.memory_info().rss)
    print(json.dumps({
        "method": method,
        "array_bytes": arr.nbytes,
        "rss_growth_bytes": peak - baseline,
        "seconds": seconds,
        "output_bytes": os.path.getsize(out),
    }))
    """
)


def run_one(method: str, n: int, workdir: Path) -> dict[str, float | int | str]:
    script = workdir / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "SNAPKIT_CACHE_DIR": str(workdir / "cache")}
    done = subprocess.run(
        [sys.executable, str(script), method, str(n), str(workdir)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{method} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float | int | str] = json.loads(
        done.stdout.strip().splitlines()[-1]
    )
    for leftover in workdir.iterdir():
        if leftover.is_file():
            leftover.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gib", type=float, default=1.0, help="array size in GiB")
    parser.add_argument("--only", choices=METHODS, action="append")
    args = parser.parse_args()
    n = int(args.gib * 2**30) // 8
    rows = []
    with tempfile.TemporaryDirectory(prefix="snapkit-bench-") as tmp:
        for method in args.only or METHODS:
            row = run_one(method, n, Path(tmp))
            row["rss_growth_pct"] = (
                100.0 * float(row["rss_growth_bytes"]) / float(row["array_bytes"])
            )
            rows.append(row)

    print(f"array: {n} float64 = {n * 8 / 2**30:.2f} GiB; target: snapkit < 15 %")
    print(f"{'method':<12} {'peak RSS growth':>16} {'% of array':>11} {'time s':>8}")
    for row in rows:
        print(
            f"{row['method']:<12} {int(row['rss_growth_bytes']) / 2**20:>12.0f} MiB"
            f" {float(row['rss_growth_pct']):>10.1f}% {float(row['seconds']):>8.2f}"
        )
    out_dir = HERE / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "capture_memory.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
