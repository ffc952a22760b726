"""Tests for snapkit.workspace.objects: select, pickle, scan, load."""

from __future__ import annotations

import collections
import contextlib
import fractions
import io
import logging
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import tracemalloc
from collections import OrderedDict
from os.path import join
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapkit.errors import FormatError, ObjectError, UsageError
from snapkit.workspace.objects import (
    capture_objects,
    load_object,
    pickle_object,
    scan_imports,
    select,
    top_modules,
)

# -- helpers -------------------------------------------------------------------


class Holder:
    def __init__(self, callbacks: list[Any]) -> None:
        self.callbacks = callbacks


class Slotted:
    __slots__ = ("handle", "label")

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.label = "slotted"


class Opener:
    """Loading this object would create a file: proves scanning does not load."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


class _RecordingUnpickler(pickle.Unpickler):
    """A reference: the globals a real load asks for (trusted input only)."""

    def __init__(self, data: bytes, buffers: list[Any]) -> None:
        super().__init__(io.BytesIO(data), buffers=buffers)
        self.seen: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        self.seen.add(f"{module}:{name}")
        return super().find_class(module, name)


def _run(script: Path, *args: str, cwd: Path) -> None:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# -- select ------------------------------------------------------------------


def _main_code() -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec("def user_fn(x):\n    return x\n\nclass UserClass:\n    pass\n", namespace)
    return namespace


def test_select_prunes_modules_private_ipython_builtins_and_imported_code() -> None:
    """Only user state survives; __main__ code is user state."""
    code = _main_code()
    namespace = {
        "np": np,
        "os": os,
        "_private": 1,
        "In": ["", "x = 1"],
        "Out": {1: 2},
        "get_ipython": lambda: None,
        "exit": object(),
        "quit": object(),
        "_": 1,
        "__": 2,
        "___": 3,
        "_1": 4,
        "_i1": "x = 1",
        "_ih": [],
        "_oh": {},
        "_dh": [],
        "__builtins__": __builtins__,
        "print": print,
        "len": len,
        "join": join,
        "OrderedDict": OrderedDict,
        "ndarray": np.ndarray,
        "zeros": np.zeros,
        "data": [1, 2, 3],
        "frame_like": OrderedDict(a=1),
        "user_fn": code["user_fn"],
        "UserClass": code["UserClass"],
        "arr": np.arange(3),
    }
    chosen = select(namespace)
    assert list(chosen) == ["UserClass", "arr", "data", "frame_like", "user_fn"]


def test_select_keeps_shadowed_builtin_names_and_local_code() -> None:
    """A user value named like a builtin is kept; so is code of a local module."""
    chosen = select({"len": 3, "Holder": Holder, "list": [1]})
    assert list(chosen) == ["Holder", "len", "list"]


def test_select_include_and_exclude() -> None:
    """include takes exactly the names given, exclude always wins."""
    namespace = {"model": 1, "data": 2, "np": np, "_x": 3}
    assert select(namespace, include=["np", "model"]) == {"model": 1, "np": np}
    assert select(namespace, include=["model", "data"], exclude=["data"]) == {
        "model": 1
    }
    assert select(namespace, exclude=["model"]) == {"data": 2}


def test_select_absent_include_names_close_matches() -> None:
    """A typo in include raises UsageError naming it and what was meant."""
    with pytest.raises(UsageError) as info:
        select({"model": 1, "models": 2, "data": 3}, include=["modle"])
    message = str(info.value)
    assert "'modle'" in message
    assert "model" in message


# -- pickling ----------------------------------------------------------------


def test_large_array_goes_out_of_band_without_copy() -> None:
    """A 64 MiB array: the buffer is the array's own memory, the stream tiny."""
    array = np.arange(8 * 1024 * 1024, dtype=np.float64)
    assert array.nbytes == 64 * 1024 * 1024

    tracemalloc.start()
    try:
        pickled = pickle_object("big", array)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert len(pickled.stream) < 4096
    assert len(pickled.buffers) == 1
    buf = pickled.buffers[0]
    assert buf.format == "B" and buf.ndim == 1 and buf.contiguous
    assert buf.nbytes == array.nbytes
    view = np.frombuffer(buf, dtype=np.uint8)
    assert view.__array_interface__["data"][0] == array.__array_interface__["data"][0]
    assert np.shares_memory(view, array)
    assert peak < 8 * 1024 * 1024, "pickling copied the array"
    assert pickled.summary == {
        "shape": [8 * 1024 * 1024],
        "dtype": "float64",
        "nbytes": 64 * 1024 * 1024,
    }
    assert pickled.type == "numpy.ndarray"


def test_fortran_order_array_is_out_of_band_too() -> None:
    """F-contiguous memory is still handed over as one raw view."""
    array = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    pickled = pickle_object("f", array)
    assert np.shares_memory(np.frombuffer(pickled.buffers[0], np.uint8), array)
    loaded = load_object("f", pickled.stream, [bytearray(pickled.buffers[0])])
    assert np.array_equal(loaded, array) and loaded.flags.f_contiguous


def test_summaries() -> None:
    """Containers report their length, frames their shape and columns."""
    import pandas as pd

    frame = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5], "c": [3, 4]})
    summary = pickle_object("df", frame).summary
    assert summary["shape"] == [2, 3]
    assert summary["columns"] == ["a", "b", "c"]
    assert summary["dtypes"] == {"float64": 1, "int64": 2}
    assert pickle_object("s", frame["a"]).summary == {"length": 2, "dtype": "int64"}
    assert pickle_object("d", {"a": 1}).summary == {"length": 1}
    assert pickle_object("n", 3).summary == {}


def test_unpicklable_names_the_path() -> None:
    """The error names variable, attribute path and cause, and what to do."""
    with pytest.raises(ObjectError) as info:
        pickle_object("model", Holder(callbacks=[1, 2, threading.Lock()]))
    message = str(info.value)
    assert "model.callbacks[2]" in message
    assert "lock" in message
    assert "exclude=['model']" in message
    assert "--exclude-object" in message
    assert 'on_unpicklable="skip"' in message
    assert isinstance(info.value.__cause__, Exception)


@pytest.mark.parametrize(
    ("value", "path"),
    [
        pytest.param({"a": [0, threading.Lock()]}, "cfg['a'][1]", id="dict-list"),
        pytest.param(Slotted(threading.Lock()), "cfg.handle", id="slots"),
        pytest.param((1, {threading.Lock()}), "cfg[1]{item 0}", id="tuple-set"),
    ],
)
def test_unpicklable_paths_through_containers(value: Any, path: str) -> None:
    """The search walks dicts, lists, tuples, sets and slots."""
    with pytest.raises(ObjectError, match=r"cannot pickle") as info:
        pickle_object("cfg", value)
    assert f"{path}: " in str(info.value)


def test_unpicklable_search_survives_cycles() -> None:
    """A value that contains itself still gets a path, and terminates."""
    holder = Holder([])
    holder.callbacks.extend([holder, threading.Lock()])
    with pytest.raises(ObjectError) as info:
        pickle_object("loop", holder)
    assert "loop.callbacks[1]" in str(info.value)


def test_capture_objects_skips_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    """on_unpicklable='skip' keeps the rest and records why one was left out."""
    values = {"model": Holder([1, 2, threading.Lock()]), "ok": [1, 2]}
    with caplog.at_level(logging.WARNING, logger="snapkit.workspace.objects"):
        pickled, skipped = capture_objects(values, on_unpicklable="skip")
    assert [p.name for p in pickled] == ["ok"]
    assert [s.name for s in skipped] == ["model"]
    assert "model.callbacks[2]" in skipped[0].reason
    assert any("model" in r.getMessage() for r in caplog.records)

    with pytest.raises(ObjectError, match=r"model\.callbacks\[2\]"):
        capture_objects(values, on_unpicklable="raise")
    with pytest.raises(UsageError):
        capture_objects(values, on_unpicklable="ignore")  # type: ignore[arg-type]


def test_registry_is_left_as_found() -> None:
    """Modules registered by value for one dump are unregistered afterwards."""
    before = cloudpickle.list_registry_pickle_by_value()
    pickle_object("h", Holder([1]))
    assert cloudpickle.list_registry_pickle_by_value() == before


# -- round trip through child interpreters -------------------------------------

_DUMP = """
import pathlib
import sys

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

import helpers_local
from snapkit.workspace.objects import pickle_object


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def norm2(self):
        return self.x ** 2 + self.y ** 2


out = pathlib.Path(sys.argv[1])
rng = np.random.default_rng(0)
X = rng.normal(size=(150, 4))
y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1).astype(int)
model = LogisticRegression(max_iter=1000).fit(X, y)
np.save(out / "X.npy", X)
np.save(out / "proba.npy", model.predict_proba(X))

values = {
    "array": np.arange(1000, dtype=np.float64).reshape(100, 10),
    "frame": pd.DataFrame(
        {"a": np.arange(5), "b": list("vwxyz"), "c": np.linspace(0, 1, 5)}
    ),
    "model": model,
    "square": lambda v: v * v,
    "Point": Point,
    "point": Point(3, 4),
    "widget": helpers_local.Widget(5),
    "nested": {"list": [1, (2, 3), {"k": [7.5, None]}], "set": {1, 2}, "b": b"x"},
}
for name, value in values.items():
    pickled = pickle_object(name, value)
    if name == "widget":
        assert not any("helpers_local" in i for i in pickled.imports), pickled.imports
    folder = out / name
    folder.mkdir()
    (folder / "stream").write_bytes(pickled.stream)
    for i, buf in enumerate(pickled.buffers):
        (folder / f"{i}.buf").write_bytes(buf)
print("dumped")
"""

_LOAD = """
import pathlib
import sys

import numpy as np
import pandas as pd

from snapkit.workspace.objects import load_object

out = pathlib.Path(sys.argv[1])


def load(name):
    folder = out / name
    bufs = sorted(folder.glob("*.buf"), key=lambda p: int(p.stem))
    buffers = [bytearray(p.read_bytes()) for p in bufs]
    return load_object(name, (folder / "stream").read_bytes(), buffers)


array = load("array")
expected = np.arange(1000, dtype=np.float64).reshape(100, 10)
assert array.tobytes() == expected.tobytes() and array.shape == (100, 10)

pd.testing.assert_frame_equal(
    load("frame"),
    pd.DataFrame({"a": np.arange(5), "b": list("vwxyz"), "c": np.linspace(0, 1, 5)}),
)

model = load("model")
X = np.load(out / "X.npy")
assert np.array_equal(model.predict_proba(X), np.load(out / "proba.npy"))

assert load("square")(7) == 49
Point = load("Point")
point = load("point")
assert Point(1, 2).norm2() == 5
assert (point.x, point.y, point.norm2()) == (3, 4, 25)
assert isinstance(point, Point)

widget = load("widget")
assert widget.double() == 10
assert "helpers_local" not in sys.modules

assert load("nested") == {
    "list": [1, (2, 3), {"k": [7.5, None]}], "set": {1, 2}, "b": b"x"
}
print("loaded")
"""

_HELPERS = """
class Widget:
    def __init__(self, size):
        self.size = size

    def double(self):
        return self.size * 2
"""


def test_round_trip_through_child_interpreters(tmp_path: Path) -> None:
    """Dump in one fresh interpreter, load in another that lacks the scripts."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "dump.py").write_text(textwrap.dedent(_DUMP))
    (source / "helpers_local.py").write_text(textwrap.dedent(_HELPERS))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "load.py").write_text(textwrap.dedent(_LOAD))
    out = tmp_path / "out"
    out.mkdir()

    _run(source / "dump.py", str(out), cwd=source)
    _run(elsewhere / "load.py", str(out), cwd=elsewhere)


# -- scanning ------------------------------------------------------------------


def _reference_imports(stream: bytes, buffers: list[Any]) -> set[str]:
    unpickler = _RecordingUnpickler(stream, buffers)
    unpickler.load()
    return unpickler.seen


@pytest.mark.parametrize("protocol", range(6))
def test_scan_matches_what_loading_imports(protocol: int) -> None:
    """For protocols 0-5 the scan lists exactly the globals a load looks up."""
    value = {
        "array": np.arange(6).reshape(2, 3),
        "od": collections.OrderedDict(a=1),
        "fraction": fractions.Fraction(1, 3),
        "holder": Holder([b"bytes", {1, 2}, frozenset({3})]),
        "types": [Holder, Holder],
        "shared": ["repeat"] * 3,
    }
    buffers: list[pickle.PickleBuffer] = []
    callback = buffers.append if protocol >= 5 else None
    stream = pickle.dumps(value, protocol=protocol, buffer_callback=callback)

    found = scan_imports(stream)
    assert found == sorted(found)
    assert set(found) == _reference_imports(stream, buffers)
    assert {"collections:OrderedDict", "fractions:Fraction"} <= set(found)
    assert any(f.startswith("numpy") for f in found)


def test_scan_of_pickle_object_output() -> None:
    """pickle_object records the numpy reconstructors of an array."""
    pickled = pickle_object("a", np.arange(3))
    assert pickled.imports == scan_imports(pickled.stream)
    assert any(i.startswith("numpy") and ":" in i for i in pickled.imports)
    assert top_modules(pickled.imports) == ["numpy"]


def test_scan_reports_modules_cloudpickle_imports_by_name() -> None:
    """A by-value function that uses numpy shows numpy as a module import."""
    pickled = pickle_object("f", lambda v: np.sum(v))
    assert "numpy:<module>" in pickled.imports
    assert "cloudpickle" in top_modules(pickled.imports)


@pytest.mark.parametrize("protocol", range(6))
def test_scan_does_not_unpickle(tmp_path: Path, protocol: int) -> None:
    """A stream that would create a file on load creates nothing when scanned."""
    target = tmp_path / f"created-{protocol}"
    stream = pickle.dumps(Opener(str(target)), protocol=protocol)

    # pickle names io.open by its defining module: "io" up to 3.12, "_io" after.
    assert scan_imports(stream) == [f"{io.open.__module__}:open"]
    assert not target.exists()

    pickle.loads(stream).close()  # the trap is real
    assert target.exists()


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x80\x05", id="no-stop"),
        pytest.param(b"\xff\xfe", id="bad-opcode"),
        pytest.param(b"\x80\x04K\x01K\x02\x93.", id="stack-global-of-ints"),
        pytest.param(b"\x80\x04h\x05.", id="unset-memo"),
        pytest.param(b"\x80\x04t.", id="tuple-without-mark"),
        pytest.param(b"\x80\x04\x94.", id="memoize-empty-stack"),
        pytest.param(pickle.dumps([1, "two"], protocol=5)[:-3], id="truncated"),
    ],
)
def test_scan_malformed_raises_format_error(stream: bytes) -> None:
    """Malformed streams raise FormatError naming the object."""
    with pytest.raises(
        FormatError, match=r"object 'model': the pickle stream is malformed"
    ):
        scan_imports(stream, "model")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([b"", b"\x80\x02", b"\x80\x05"]))
def test_scan_random_bytes_only_format_error(data: bytes, prefix: bytes) -> None:
    """Arbitrary bytes give a list of strings or FormatError, nothing else."""
    try:
        found = scan_imports(prefix + data)
    except FormatError:
        return
    assert all(isinstance(f, str) for f in found)


_VALID = pickle.dumps({"a": [1, "x", Holder([2.5])], "b": (None, True)}, protocol=5)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, len(_VALID) - 1), st.integers(0, 255))
def test_scan_mutated_stream_only_format_error(index: int, byte: int) -> None:
    """A valid stream with one byte changed never escapes as another error."""
    data = bytearray(_VALID)
    data[index] = byte
    with contextlib.suppress(FormatError):
        scan_imports(bytes(data))


# -- loading -------------------------------------------------------------------


def test_load_missing_module_says_what_to_install() -> None:
    """A stream naming an absent module raises ObjectError with the next step."""
    stream = b"\x80\x04\x8c\x13surely_not_a_module\x8c\x01X\x93)R."
    with pytest.raises(ObjectError) as info:
        load_object("model", stream, [])
    message = str(info.value)
    assert "'model'" in message
    assert "surely_not_a_module" in message
    assert "snapkit requirements" in message
    assert "pip install" in message


def test_load_other_failures_are_object_errors() -> None:
    """Any failure inside loads is reported as ObjectError for that object."""
    with pytest.raises(ObjectError, match="'x'"):
        load_object("x", b"\x80\x04\x8c\x08builtins\x8c\x06nosuch\x93.", [])
    with pytest.raises(ObjectError, match="'y'"):
        load_object("y", b"garbage", [])


def test_load_bytes_buffers_are_read_only_bytearray_writable() -> None:
    """The buffer type decides whether a loaded array is writable."""
    pickled = pickle_object("a", np.arange(4))
    raw = bytes(pickled.buffers[0])
    assert not load_object("a", pickled.stream, [raw]).flags.writeable
    assert load_object("a", pickled.stream, [bytearray(raw)]).flags.writeable
