"""msgpack ceilings, and the manifest decoder's field checks."""

from __future__ import annotations

import contextlib
import dataclasses
import struct
import tracemalloc
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import file_manifest

from snapkit.errors import FormatError
from snapkit.store import serial
from snapkit.store.codec import MAX_BLOB_SIZE
from snapkit.workspace.manifest import (
    Distribution,
    FileEntry,
    Libraries,
    Manifest,
    ObjectEntry,
    SkippedObject,
)

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=50)
    | st.binary(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(value=values)
def test_pack_unpack_round_trip(value: Any) -> None:
    data = serial.pack(value)
    assert serial.unpack(data, "t") == value
    assert serial.pack(value) == data


@settings(max_examples=300, deadline=None)
@given(junk=st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_format_error(junk: bytes) -> None:
    with contextlib.suppress(FormatError):
        serial.unpack(junk, "fuzz")


def test_depth_bomb() -> None:
    for depth in (serial.MAX_DEPTH + 1, 5000, 200_000):
        with pytest.raises(FormatError, match="fuzzdoc"):
            serial.unpack(b"\x91" * depth + b"\xc0", "fuzzdoc")
    nested_maps = b"\x81\xa1k" * (serial.MAX_DEPTH + 1) + b"\xc0"
    with pytest.raises(FormatError, match="nesting"):
        serial.unpack(nested_maps, "t")
    assert serial.unpack(b"\x91" * (serial.MAX_DEPTH - 1) + b"\xc0", "t") is not None


@pytest.mark.parametrize(
    "header",
    [
        b"\xdd" + struct.pack(">I", 0xFFFFFFFF),  # array of 4 G items
        b"\xdd" + struct.pack(">I", serial.MAX_ITEMS),  # array at the ceiling
        b"\xdf" + struct.pack(">I", 0xFFFFFFFF),  # map of 4 G pairs
        b"\xdb" + struct.pack(">I", 0xFFFFFFFF),  # str of 4 GiB
        b"\xc6" + struct.pack(">I", 0xFFFFFFFF),  # bin of 4 GiB
    ],
    ids=["array", "array-at-ceiling", "map", "str", "bin"],
)
def test_huge_declared_length_in_short_input(header: bytes) -> None:
    """A length prefix alone never makes the decoder allocate for it."""
    tracemalloc.start()
    try:
        with pytest.raises(FormatError):
            serial.unpack(header + b"\x00" * 8, "t")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024


def test_trailing_bytes() -> None:
    with pytest.raises(FormatError, match="trailing"):
        serial.unpack(serial.pack({"a": 1}) + b"\x00", "t")


def test_document_size_ceiling() -> None:
    with pytest.raises(FormatError, match="ceiling"):
        serial.unpack(b"\xc0" * 11, "t", max_size=10)


@pytest.mark.parametrize(
    "data",
    [
        b"\x81\x01\x01",  # {1: 1}
        b"\x81\xff\x01",  # {-1: 1}
        b"\x81\xc0\x01",  # {None: 1}
        b"\x81\xcb" + struct.pack(">d", 1.5) + b"\x01",  # {1.5: 1}
        b"\x81\x91\x01\x01",  # {[1]: 1}
        b"\x81\xa1k\x81\x01\x01",  # {"k": {1: 1}}
    ],
    ids=["int", "negative", "nil", "float", "array", "nested"],
)
def test_non_str_map_keys(data: bytes) -> None:
    with pytest.raises(FormatError):
        serial.unpack(data, "t")


def test_bytes_map_keys() -> None:
    with pytest.raises(FormatError, match="key"):
        serial.unpack(msgpack.packb({b"k": 1}, use_bin_type=True), "t")


def test_ext_types_rejected() -> None:
    with pytest.raises(FormatError):
        serial.unpack(msgpack.packb(msgpack.ExtType(1, b"abc")), "t")


# -- manifests -------------------------------------------------------------------


def full_manifest() -> Manifest:
    bid = "ab" * 32
    return Manifest(
        name="Iris Snapshot",
        created="2026-01-02T03:04:05.000000Z",
        host="h",
        tags=["v1"],
        objects=[
            ObjectEntry(
                name="model",
                type="sklearn.tree.DecisionTreeClassifier",
                pickle=[(bid, 10)],
                buffers=[[(bid, 10)]],
                stored_size=5,
                imports=["sklearn.tree:DecisionTreeClassifier"],
                summary={"depth": 3},
            )
        ],
        skipped=[SkippedObject("conn", "sockets cannot be pickled")],
        libraries=Libraries(
            python_version="3.11.7",
            distributions=[Distribution("numpy", "2.0", None)],
            required=["numpy"],
        ),
        files=[
            FileEntry("iris.csv", "file", 0o644, 10, 1, [(bid, 10)], None, 5),
            FileEntry("data", "dir", 0o755, 0, 1, [], None, 0),
            FileEntry("latest.csv", "symlink", 0o777, 0, 1, [], "iris.csv", 0),
        ],
    )


def test_manifest_round_trip_and_id() -> None:
    m = full_manifest()
    data = m.encode()
    again = Manifest.decode(data)
    assert again == m
    assert again.encode() == data
    assert again.id == m.id


@settings(max_examples=100, deadline=None)
@given(
    name=st.text(max_size=30),
    sizes=st.lists(st.integers(0, MAX_BLOB_SIZE), max_size=5),
)
def test_manifest_round_trip_hypothesis(name: str, sizes: list[int]) -> None:
    m = file_manifest(name, {f"f{i}": [("cd" * 32, s)] for i, s in enumerate(sizes)})
    assert Manifest.decode(m.encode()) == m


def _wire() -> dict[str, Any]:
    doc: dict[str, Any] = msgpack.unpackb(full_manifest().encode())
    return doc


def _set(doc: Any, path: list[Any], value: Any) -> None:
    for step in path[:-1]:
        doc = doc[step]
    if value is _DELETE:
        del doc[path[-1]]
    else:
        doc[path[-1]] = value


_DELETE = object()

HOSTILE = [
    (["name"], 7, "name"),
    (["name"], _DELETE, "name"),
    (["created"], None, "created"),
    (["tags"], "v1", "tags"),
    (["tags", 0], 1, r"tags\[0\]"),
    (["objects"], {}, "objects"),
    (["objects", 0], [], r"objects\[0\]"),
    (["objects", 0, "pickle", 0, 0], "zz" * 32, r"objects\[0\]\.pickle\[0\]\[0\]"),
    (["objects", 0, "pickle", 0, 0], "AB" * 32, r"objects\[0\]\.pickle\[0\]\[0\]"),
    (["objects", 0, "pickle", 0, 0], "ab" * 31, r"objects\[0\]\.pickle\[0\]\[0\]"),
    (["objects", 0, "pickle", 0, 1], -1, r"objects\[0\]\.pickle\[0\]\[1\]"),
    (["objects", 0, "pickle", 0], ["ab" * 32], r"objects\[0\]\.pickle\[0\]"),
    (["objects", 0, "buffers", 0, 0, 1], True, r"buffers\[0\]\[0\]\[1\]"),
    (["objects", 0, "stored"], -5, "stored"),
    (["objects", 0, "summary"], [], "summary"),
    (["skipped", 0], "conn", r"skipped\[0\]"),
    (["libraries", "python"], 3.11, "python"),
    (["libraries", "distributions", 0], ["numpy", "2.0"], "distributions"),
    (["libraries", "distributions", 0, 2], 5, r"distributions\[0\]\[2\]"),
    (["files", 0, 1], "fifo", "kind"),
    (["files", 0, 2], "644", "mode"),
    (["files", 0, 3], -10, "size"),
    (["files", 0, 4], 1.0, "mtime_ns"),
    (["files", 0, 5, 0, 0], "not-hex", r"files\[0\]\.blobs\[0\]\[0\]"),
    (["files", 0], ["iris.csv", "file"], r"files\[0\]"),
    (["files", 0, 6], 3, "target"),
    (["files", 0, 3], 11, r"files\[0\]\.size.*chunks add up"),
    (["files", 0, 5, 0, 1], MAX_BLOB_SIZE + 1, r"files\[0\]\.blobs\[0\]\[1\].*ceiling"),
    (["files", 0, 6], "elsewhere", r"files\[0\]\.target.*regular file"),
]


@pytest.mark.parametrize(
    ("path", "value", "field"),
    HOSTILE,
    ids=[h[2] + str(i) for i, h in enumerate(HOSTILE)],
)
def test_hostile_manifest_names_the_field(
    path: list[Any], value: Any, field: str
) -> None:
    doc = _wire()
    _set(doc, path, value)
    data = msgpack.packb(doc, use_bin_type=True)
    with pytest.raises(FormatError, match=field) as info:
        Manifest.decode(data, "archive a.snap: manifest 1234")
    assert "a.snap" in str(info.value)


@pytest.mark.parametrize("fmt", [0, 2, 99])
def test_unknown_manifest_format_says_upgrade(fmt: int) -> None:
    doc = _wire()
    doc["format"] = fmt
    with pytest.raises(FormatError, match=f"format {fmt}.*upgrade"):
        Manifest.decode(msgpack.packb(doc))


def test_manifest_that_is_not_a_map() -> None:
    for doc in ([], "x", 1, None):
        with pytest.raises(FormatError, match="manifest"):
            Manifest.decode(msgpack.packb(doc))


def test_a_size_over_the_blob_ceiling_fails_before_any_allocation() -> None:
    """A ref claiming 2**62 bytes would make a reader allocate that much."""
    doc = _wire()
    doc["objects"][0]["pickle"][0][1] = 2**62
    with pytest.raises(FormatError, match=r"pickle\[0\]\[1\].*ceiling"):
        Manifest.decode(msgpack.packb(doc))


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda doc: doc.__setitem__("extra", 1), "unknown key"),
        (lambda doc: doc.update(dict(reversed(list(doc.items())))), "key order"),
    ],
    ids=["unknown-key", "key-order"],
)
def test_non_canonical_manifest_is_refused(change: Any, why: str) -> None:
    """Re-encoding would give other bytes, hence another id: refuse it.

    An archive append or a copy writes the manifest again; if decoding
    accepted these, the copy would sit under an id it does not hash to.
    """
    doc = _wire()
    if why == "key order":
        doc = dict(reversed(list(doc.items())))
    else:
        change(doc)
    data = msgpack.packb(doc, use_bin_type=True)
    with pytest.raises(FormatError, match="canonical"):
        Manifest.decode(data)


def test_wider_integer_encoding_is_refused() -> None:
    """The same value with a wider msgpack integer is another manifest."""
    data = full_manifest().encode()
    fmt_one = b"\xa6format\x01"
    assert fmt_one in data
    wider = data.replace(fmt_one, b"\xa6format\xcd\x00\x01", 1)
    with pytest.raises(FormatError, match="canonical"):
        Manifest.decode(wider)


def test_manifest_over_the_ceiling_is_refused_at_encode() -> None:
    """A manifest that could not be read back is never written."""
    from snapkit.errors import UsageError

    m = dataclasses.replace(full_manifest(), tags=["x" * 2**20] * 257)
    with pytest.raises(UsageError, match="ceiling on a manifest"):
        m.encode()


@pytest.mark.parametrize(
    ("index", "value", "why"),
    [
        (3, 5, "holds no bytes"),
        (6, "", "needs a target"),
    ],
)
def test_link_and_folder_entries_hold_no_bytes(
    index: int, value: Any, why: str
) -> None:
    doc = _wire()
    link = [e for e in doc["files"] if e[1] == "symlink"]
    assert link, "full_manifest() should hold a symlink entry"
    link[0][index] = value
    with pytest.raises(FormatError, match=why):
        Manifest.decode(msgpack.packb(doc, use_bin_type=True))


def test_string_over_the_ceiling_is_refused() -> None:
    """A real string one byte over MAX_STRING, not only a lying header."""
    data = msgpack.packb({"s": "x" * (serial.MAX_STRING + 1)})
    with pytest.raises(FormatError, match="not a valid msgpack"):
        serial.unpack(data, "t")
    assert serial.unpack(msgpack.packb({"s": "x" * 1000}), "t") == {"s": "x" * 1000}


def test_manifest_list_over_max_entries_is_refused() -> None:
    """Five million and one entries in one manifest list names the field."""
    from snapkit.workspace.manifest import MAX_ENTRIES

    doc = _wire()
    doc["tags"] = [0] * (MAX_ENTRIES + 1)
    with pytest.raises(FormatError, match=rf"tags has {MAX_ENTRIES + 1} entries"):
        Manifest.decode(msgpack.packb(doc))
