"""Round trip through two fresh interpreters: capture in one, restore in another.

The capturing child defines a lambda and a class in its ``__main__``, so they
can only travel by value; the restoring child has never seen them. Each child
prints one JSON document and exits 0; the test compares the two documents.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from capture_fixtures import isolated_cache

__all__ = ["isolated_cache"]

CAPTURE = textwrap.dedent(
    """
    import hashlib, json, os, sys
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    import snapkit

    WS, TO = sys.argv[1], sys.argv[2]

    rng = np.random.default_rng(0)
    arr = rng.random((64, 33))
    arr[0, :3] = [np.nan, -0.0, np.inf]
    ints = np.arange(10_000, dtype=np.int32).reshape(100, 100)[:, ::3]
    frame = pd.DataFrame(
        {"x": rng.normal(size=50), "label": ["a", "b"] * 25,
         "when": pd.date_range("2026-01-01", periods=50, freq="h")}
    )
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    square = lambda v: v * v + 1

    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y
        def norm2(self):
            return self.x ** 2 + self.y ** 2

    point = Point(3, 4)
    nested = {"list": [1, 2.5, "three", None], "tuple": (1, (2, (3,))),
              "set": {1, 2}, "bytes": b"\\x00\\xff", "arr": arr[:2]}

    def make_ws(root):
        def put(rel, data, mode):
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            os.chmod(path, mode)
        put("run.sh", b"#!/bin/sh\\necho hi\\n", 0o755)
        put("private.dat", b"mine only\\n" * 5, 0o600)
        put("notes.txt", b"notes\\n" * 100, 0o644)
        put("sub/deeper/data.bin", os.urandom(700_000), 0o640)
        os.mkdir(os.path.join(root, "empty"))
        os.chmod(os.path.join(root, "empty"), 0o750)
        os.symlink("notes.txt", os.path.join(root, "link"))
        os.symlink("../run.sh", os.path.join(root, "sub", "uplink"))

    make_ws(WS)
    snap = snapkit.capture(
        namespace=globals(),
        include=["arr", "ints", "frame", "model", "square", "Point", "point",
                 "nested"],
        files=WS, to=TO, name="child round trip",
    )
    probe = np.linspace(-2, 2, 40).reshape(10, 4)
    print(json.dumps({
        "id": snap.id,
        "objects": snap.objects,
        "files": sorted(f.path for f in snap.manifest.files),
        "arr": hashlib.sha256(arr.tobytes()).hexdigest(),
        "ints": hashlib.sha256(ints.tobytes()).hexdigest(),
        "predict": model.predict(probe).tolist(),
        "proba": hashlib.sha256(model.predict_proba(probe).tobytes()).hexdigest(),
    }))
    snap.close()
    """
)

RESTORE = textwrap.dedent(
    """
    import hashlib, json, os, stat, sys
    import numpy as np
    import pandas as pd
    import snapkit

    WS, SRC, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
    problems = []

    def check(ok, what):
        if not ok:
            problems.append(what)

    result = snapkit.restore(SRC, into=OUT)
    got = result.objects
    with snapkit.open(SRC) as snap:
        model = snap.load("model")
        lazy_arr = snap.load("arr")

    rng = np.random.default_rng(0)
    arr = rng.random((64, 33))
    arr[0, :3] = [np.nan, -0.0, np.inf]
    for value in (got["arr"], lazy_arr):
        check(value.dtype == arr.dtype and value.shape == arr.shape, "arr dtype")
        check(np.array_equal(value, arr, equal_nan=True), "arr values")
        check(value.tobytes() == arr.tobytes(), "arr bytes")
    ints = got["ints"]
    check(ints.dtype == np.int32, "ints dtype")
    frame = got["frame"]
    expect = pd.DataFrame(
        {"x": rng.normal(size=50), "label": ["a", "b"] * 25,
         "when": pd.date_range("2026-01-01", periods=50, freq="h")}
    )
    check(frame.equals(expect), "frame equals")
    check(got["square"](7) == 50, "lambda")
    point = got["point"]
    check((point.x, point.y, point.norm2()) == (3, 4, 25), "instance attrs")
    check(type(point).__name__ == "Point", "instance class")
    check(got["Point"](1, 2).norm2() == 5, "class by value")
    nested = got["nested"]
    check(nested["list"] == [1, 2.5, "three", None], "nested list")
    check(nested["tuple"] == (1, (2, (3,))), "nested tuple")
    check(nested["set"] == {1, 2} and nested["bytes"] == b"\\x00\\xff", "nested")
    check(np.array_equal(nested["arr"], arr[:2], equal_nan=True), "nested arr")

    def walk(root):
        out = {}
        for base, dirs, files in os.walk(root):
            for name in dirs + files:
                path = os.path.join(base, name)
                out[os.path.relpath(path, root)] = os.lstat(path)
        return out

    before, after = walk(WS), walk(OUT)
    check(sorted(before) == sorted(after), f"paths {sorted(before)} {sorted(after)}")
    for rel, st in before.items():
        other = after.get(rel)
        if other is None:
            continue
        src, dst = os.path.join(WS, rel), os.path.join(OUT, rel)
        check(stat.S_IFMT(st.st_mode) == stat.S_IFMT(other.st_mode), f"kind {rel}")
        if stat.S_ISLNK(st.st_mode):
            check(os.readlink(src) == os.readlink(dst), f"link target {rel}")
            continue
        if stat.S_ISREG(st.st_mode):
            with open(src, "rb") as a, open(dst, "rb") as b:
                check(a.read() == b.read(), f"bytes {rel}")
            check(st.st_mtime_ns == other.st_mtime_ns, f"mtime {rel}")
        if stat.S_ISREG(st.st_mode) or rel == "empty":
            check(stat.S_IMODE(st.st_mode) == stat.S_IMODE(other.st_mode),
                  f"mode {rel} {oct(st.st_mode)} {oct(other.st_mode)}")
    check(os.listdir(os.path.join(OUT, "empty")) == [], "empty dir")

    probe = np.linspace(-2, 2, 40).reshape(10, 4)
    print(json.dumps({
        "id": result.snapshot_id,
        "objects": sorted(got),
        "problems": problems,
        "arr": hashlib.sha256(got["arr"].tobytes()).hexdigest(),
        "ints": hashlib.sha256(ints.tobytes()).hexdigest(),
        "predict": model.predict(probe).tolist(),
        "proba": hashlib.sha256(model.predict_proba(probe).tobytes()).hexdigest(),
    }))
    sys.exit(1 if problems else 0)
    """
)


def _child(script: Path, *args: object, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"child {script.name} printed nothing:\n{done.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(lines[-1])
    assert done.returncode == 0, (report, done.stderr[-3000:])
    return report


@pytest.mark.parametrize("kind", ["archive", "store"])
def test_round_trip_in_fresh_interpreters(
    tmp_path: Path, isolated_cache: Path, kind: str
) -> None:
    """Objects equal (arrays bitwise, same predictions); files, modes, links."""
    ws, out = tmp_path / "ws", tmp_path / "out"
    ws.mkdir()
    if kind == "archive":
        target = tmp_path / "x.snap"
    else:
        target = tmp_path / "store"
        target.mkdir()
    (tmp_path / "capture.py").write_text(CAPTURE)
    (tmp_path / "restore.py").write_text(RESTORE)
    env = {**os.environ, "SNAPKIT_CACHE_DIR": str(isolated_cache)}

    captured = _child(tmp_path / "capture.py", ws, target, env=env)
    restored = _child(tmp_path / "restore.py", ws, target, out, env=env)

    assert restored["problems"] == []
    assert restored["id"] == captured["id"]
    assert restored["objects"] == sorted(captured["objects"])
    assert len(captured["objects"]) == 8
    for key in ("arr", "ints", "predict", "proba"):
        assert restored[key] == captured[key], key
    assert "empty" in captured["files"] and "link" in captured["files"]
