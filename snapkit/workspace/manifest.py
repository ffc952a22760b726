"""The manifest: the msgpack record of one snapshot.

A manifest names every blob a snapshot needs, so a repository can check a
snapshot is complete before it becomes visible, and diff and audit need no
blob at all. Its encoding is deterministic (fixed key order, see
:mod:`snapkit.store.serial`) and the snapshot id is the SHA-256 of those bytes.

Decoding validates the shape of every field, the ceilings on counts and
sizes, and that the bytes are exactly what :meth:`Manifest.encode` gives for
the decoded value (the canonical form): a manifest with unknown keys, another
key order or another integer width would otherwise change its id when it is
written again, by ``copy`` or an archive append. A manifest that breaks any
of these raises :class:`~snapkit.errors.FormatError` naming the field. Paths
are *not* judged safe here: restore checks them again against its root,
because a manifest can come from anyone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from snapkit.errors import FormatError, UsageError
from snapkit.store import serial
from snapkit.store.codec import MAX_BLOB_SIZE

__all__ = [
    "FORMAT_VERSION",
    "MAX_ENTRIES",
    "BlobRef",
    "Distribution",
    "FileEntry",
    "Libraries",
    "Manifest",
    "ObjectEntry",
    "SkippedObject",
    "content_id",
]

FORMAT_VERSION = 1
#: Ceiling on files, objects, distributions, or chunks of one entry.
MAX_ENTRIES = 5_000_000

#: One chunk of a stream: its blob id (hex SHA-256) and uncompressed size.
BlobRef = tuple[str, int]


def content_id(chunks: Iterable[Iterable[BlobRef]]) -> str:
    """Return an id for the content of one or more chunk lists.

    Two objects or files with the same bytes cut the same way share it; it is
    what diff compares, so it never needs to read a blob.
    """
    h = hashlib.sha256()
    for part in chunks:
        h.update(b"|")
        for bid, size in part:
            h.update(f"{bid}:{size};".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class ObjectEntry:
    """One named value: a pickle stream plus its out-of-band buffers."""

    name: str
    type: str
    pickle: list[BlobRef]
    buffers: list[list[BlobRef]] = field(default_factory=list)
    stored_size: int = 0
    #: ``module:qualname`` of every global the pickle references.
    imports: list[str] = field(default_factory=list)
    #: Short description for diff and show: shape, dtype, columns, length.
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def raw_size(self) -> int:
        return sum(s for _, s in self.pickle) + sum(
            s for buf in self.buffers for _, s in buf
        )

    @property
    def content_id(self) -> str:
        return content_id([self.pickle, *self.buffers])

    def blob_refs(self) -> Iterator[BlobRef]:
        yield from self.pickle
        for buf in self.buffers:
            yield from buf


@dataclass(frozen=True)
class SkippedObject:
    """A name that was asked for but could not be captured, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class FileEntry:
    """One path under the workspace root (POSIX separators, relative)."""

    path: str
    kind: str  # "file", "symlink" or "dir"
    mode: int
    size: int = 0
    mtime_ns: int = 0
    blobs: list[BlobRef] = field(default_factory=list)
    target: str | None = None
    stored_size: int = 0

    @property
    def content_id(self) -> str:
        if self.kind == "symlink":
            return hashlib.sha256(f"link:{self.target}".encode()).hexdigest()
        return content_id([self.blobs])


@dataclass(frozen=True)
class Distribution:
    """One installed distribution."""

    name: str
    version: str
    #: PEP 610 direct URL for editable, local or VCS installs.
    url: str | None = None


@dataclass(frozen=True)
class Libraries:
    """The interpreter and the installed and required distributions."""

    python_version: str = ""
    implementation: str = ""
    platform: str = ""
    machine: str = ""
    cloudpickle_version: str = ""
    snapkit_version: str = ""
    distributions: list[Distribution] = field(default_factory=list)
    #: Normalised names of distributions the objects or the session import.
    required: list[str] = field(default_factory=list)
    #: Top-level modules the session had imported, for the record.
    session_modules: list[str] = field(default_factory=list)

    def version_of(self, name: str) -> str | None:
        for dist in self.distributions:
            if dist.name == name:
                return dist.version
        return None


@dataclass(frozen=True)
class Manifest:
    """One snapshot's record. Immutable; ``id`` is the hash of ``encode()``."""

    name: str
    created: str  # ISO 8601, UTC, e.g. 2026-12-03T20:06:17.123456Z
    host: str = ""
    tags: list[str] = field(default_factory=list)
    objects: list[ObjectEntry] = field(default_factory=list)
    skipped: list[SkippedObject] = field(default_factory=list)
    libraries: Libraries = field(default_factory=Libraries)
    files: list[FileEntry] = field(default_factory=list)
    format: int = FORMAT_VERSION

    # -- identity ---------------------------------------------------------

    def encode(self) -> bytes:
        """The canonical bytes; raises :class:`UsageError` over the ceiling."""
        data: bytes = serial.pack(_to_wire(self))
        if len(data) > MAX_BLOB_SIZE:
            raise UsageError(
                f"the manifest of snapshot {self.name!r} would take {len(data)} "
                f"bytes, over the {MAX_BLOB_SIZE}-byte ceiling on a manifest; "
                "capture fewer files (see .snapignore and --exclude)"
            )
        return data

    @property
    def id(self) -> str:
        return hashlib.sha256(self.encode()).hexdigest()

    def blob_refs(self) -> Iterator[BlobRef]:
        for obj in self.objects:
            yield from obj.blob_refs()
        for f in self.files:
            yield from f.blobs

    def blob_ids(self) -> set[str]:
        """Every blob this snapshot needs; a repository holds all before commit."""
        return {bid for bid, _ in self.blob_refs()}

    def object(self, name: str) -> ObjectEntry | None:
        for obj in self.objects:
            if obj.name == name:
                return obj
        return None

    @property
    def raw_size(self) -> int:
        return sum(o.raw_size for o in self.objects) + sum(f.size for f in self.files)

    @classmethod
    def decode(cls, data: bytes | memoryview, where: str = "manifest") -> Manifest:
        """Parse and validate manifest bytes; raise FormatError naming the field."""
        doc = serial.unpack(data, where, max_size=MAX_BLOB_SIZE)
        manifest = _from_wire(doc, where)
        if serial.pack(_to_wire(manifest)) != bytes(data):
            raise FormatError(
                f"{where}: the manifest is not in snapkit's canonical encoding "
                "(unknown keys, another key order or integer width), so writing "
                "it again would change its id; it was not written by this "
                "version of snapkit, or it was altered"
            )
        return manifest


# -- wire format -------------------------------------------------------------
#
# Maps with short, fixed keys in a fixed order. Everything is a msgpack str,
# int, array or map so any msgpack library reads it.


def _refs(refs: list[BlobRef]) -> list[list[Any]]:
    return [[bid, size] for bid, size in refs]


def _to_wire(m: Manifest) -> dict[str, Any]:
    lib = m.libraries
    return {
        "format": m.format,
        "name": m.name,
        "created": m.created,
        "host": m.host,
        "tags": list(m.tags),
        "objects": [
            {
                "name": o.name,
                "type": o.type,
                "pickle": _refs(o.pickle),
                "buffers": [_refs(b) for b in o.buffers],
                "stored": o.stored_size,
                "imports": list(o.imports),
                "summary": o.summary,
            }
            for o in m.objects
        ],
        "skipped": [{"name": s.name, "reason": s.reason} for s in m.skipped],
        "libraries": {
            "python": lib.python_version,
            "implementation": lib.implementation,
            "platform": lib.platform,
            "machine": lib.machine,
            "cloudpickle": lib.cloudpickle_version,
            "snapkit": lib.snapkit_version,
            "distributions": [[d.name, d.version, d.url] for d in lib.distributions],
            "required": list(lib.required),
            "session_modules": list(lib.session_modules),
        },
        "files": [
            [
                f.path,
                f.kind,
                f.mode,
                f.size,
                f.mtime_ns,
                _refs(f.blobs),
                f.target,
                f.stored_size,
            ]
            for f in m.files
        ],
    }


class _Reader:
    """Typed field access that turns any shape error into a FormatError."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, path: str, why: str) -> FormatError:
        return FormatError(
            f"{self.where}: field {path} {why}; the manifest is damaged or was "
            "written by an incompatible snapkit. Run `snapkit verify` on it"
        )

    def get(self, doc: dict[str, Any], key: str, kind: type, path: str) -> Any:
        if key not in doc:
            raise self.fail(f"{path}.{key}", "is missing")
        return self.check(doc[key], kind, f"{path}.{key}")

    def check(self, value: Any, kind: type, path: str) -> Any:
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not ok:
            raise self.fail(
                path, f"should be {kind.__name__}, is {type(value).__name__}"
            )
        if kind in (list, dict) and len(value) > MAX_ENTRIES:
            raise self.fail(path, f"has {len(value)} entries, over {MAX_ENTRIES}")
        if kind is int and value < 0:
            raise self.fail(path, f"is negative ({value})")
        return value

    def opt_str(self, value: Any, path: str) -> str | None:
        return None if value is None else self.check(value, str, path)

    def strs(self, value: Any, path: str) -> list[str]:
        items = self.check(value, list, path)
        return [self.check(x, str, f"{path}[{i}]") for i, x in enumerate(items)]

    def refs(self, value: Any, path: str) -> list[BlobRef]:
        out: list[BlobRef] = []
        for i, ref in enumerate(self.check(value, list, path)):
            p = f"{path}[{i}]"
            pair = self.check(ref, list, p)
            if len(pair) != 2:
                raise self.fail(p, "should be [blob id, size]")
            bid = self.check(pair[0], str, p + "[0]")
            if len(bid) != 64 or any(c not in "0123456789abcdef" for c in bid):
                raise self.fail(p + "[0]", f"is not a hex SHA-256 ({bid[:80]!r})")
            size = self.check(pair[1], int, p + "[1]")
            if size > MAX_BLOB_SIZE:
                raise self.fail(
                    p + "[1]",
                    f"is {size} bytes, over the {MAX_BLOB_SIZE}-byte blob ceiling",
                )
            out.append((bid, size))
        return out


def _from_wire(doc: Any, where: str) -> Manifest:
    r = _Reader(where)
    r.check(doc, dict, "manifest")
    fmt = r.get(doc, "format", int, "manifest")
    if fmt != FORMAT_VERSION:
        raise FormatError(
            f"{where}: manifest format {fmt} is not supported by this snapkit "
            f"(it reads format {FORMAT_VERSION}); upgrade snapkit to read it"
        )
    objects = []
    for i, o in enumerate(r.get(doc, "objects", list, "manifest")):
        p = f"objects[{i}]"
        r.check(o, dict, p)
        objects.append(
            ObjectEntry(
                name=r.get(o, "name", str, p),
                type=r.get(o, "type", str, p),
                pickle=r.refs(r.get(o, "pickle", list, p), p + ".pickle"),
                buffers=[
                    r.refs(b, f"{p}.buffers[{j}]")
                    for j, b in enumerate(r.get(o, "buffers", list, p))
                ],
                stored_size=r.get(o, "stored", int, p),
                imports=r.strs(r.get(o, "imports", list, p), p + ".imports"),
                summary=r.get(o, "summary", dict, p),
            )
        )
    skipped = [
        SkippedObject(
            r.get(s, "name", str, f"skipped[{i}]"),
            r.get(s, "reason", str, f"skipped[{i}]"),
        )
        for i, s in enumerate(r.get(doc, "skipped", list, "manifest"))
        if r.check(s, dict, f"skipped[{i}]") is not None
    ]
    lib = r.get(doc, "libraries", dict, "manifest")
    dists = []
    for i, d in enumerate(r.get(lib, "distributions", list, "libraries")):
        p = f"libraries.distributions[{i}]"
        item = r.check(d, list, p)
        if len(item) != 3:
            raise r.fail(p, "should be [name, version, url]")
        dists.append(
            Distribution(
                r.check(item[0], str, p + "[0]"),
                r.check(item[1], str, p + "[1]"),
                r.opt_str(item[2], p + "[2]"),
            )
        )
    libraries = Libraries(
        python_version=r.get(lib, "python", str, "libraries"),
        implementation=r.get(lib, "implementation", str, "libraries"),
        platform=r.get(lib, "platform", str, "libraries"),
        machine=r.get(lib, "machine", str, "libraries"),
        cloudpickle_version=r.get(lib, "cloudpickle", str, "libraries"),
        snapkit_version=r.get(lib, "snapkit", str, "libraries"),
        distributions=dists,
        required=r.strs(
            r.get(lib, "required", list, "libraries"), "libraries.required"
        ),
        session_modules=r.strs(
            r.get(lib, "session_modules", list, "libraries"),
            "libraries.session_modules",
        ),
    )
    files = []
    for i, f in enumerate(r.get(doc, "files", list, "manifest")):
        p = f"files[{i}]"
        item = r.check(f, list, p)
        if len(item) != 8:
            raise r.fail(p, "should have 8 fields")
        kind = r.check(item[1], str, p + ".kind")
        if kind not in ("file", "symlink", "dir"):
            raise r.fail(p + ".kind", f"is {kind!r}, expected file, symlink or dir")
        entry = FileEntry(
            path=r.check(item[0], str, p + ".path"),
            kind=kind,
            mode=r.check(item[2], int, p + ".mode"),
            size=r.check(item[3], int, p + ".size"),
            mtime_ns=r.check(item[4], int, p + ".mtime_ns"),
            blobs=r.refs(item[5], p + ".blobs"),
            target=r.opt_str(item[6], p + ".target"),
            stored_size=r.check(item[7], int, p + ".stored"),
        )
        _check_file_shape(r, entry, p)
        files.append(entry)
    return Manifest(
        name=r.get(doc, "name", str, "manifest"),
        created=r.get(doc, "created", str, "manifest"),
        host=r.get(doc, "host", str, "manifest"),
        tags=r.strs(r.get(doc, "tags", list, "manifest"), "manifest.tags"),
        objects=objects,
        skipped=skipped,
        libraries=libraries,
        files=files,
        format=fmt,
    )


def _check_file_shape(r: _Reader, entry: FileEntry, path: str) -> None:
    """A file's size is the sum of its chunks; links and folders hold none.

    Restore writes what the chunks hold, so a size that disagrees with them
    would make ``show``, ``diff`` and ``audit`` report bytes that are not
    there (or hide bytes that are).
    """
    if entry.kind == "file":
        chunks = sum(size for _, size in entry.blobs)
        if chunks != entry.size:
            raise r.fail(
                path + ".size",
                f"is {entry.size}, but its chunks add up to {chunks} bytes",
            )
        if entry.target is not None:
            raise r.fail(path + ".target", "is set on a regular file")
        return
    if entry.size != 0 or entry.blobs:
        raise r.fail(path, f"a {entry.kind} entry holds no bytes, but this one does")
    if entry.kind == "symlink" and not entry.target:
        raise r.fail(path + ".target", "is empty; a symlink needs a target")
    if entry.kind == "dir" and entry.target is not None:
        raise r.fail(path + ".target", "is set on a directory")
