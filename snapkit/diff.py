"""Diff two snapshots, or a snapshot and the live workspace.

A diff compares two manifests: objects by content id, files by content and
mode, libraries by version. It never reads a blob, so diffing two snapshots on
the server costs two manifest downloads. Only ``--patch`` reads file blobs
(see :func:`text_patch`), and only for small text files.

Either side may be anything :func:`load_source` understands: a
:class:`~snapkit.workspace.manifest.Manifest`, a snapshot, an archive path
(``file.snap`` or ``file.snap#id-prefix``), a snapshot id on the configured
server, a ``(repository, id)`` pair, a directory (the live workspace,
captured as a dry run) or, in Python, a namespace dict. A live directory has
files but no objects, so when either side is one the objects are not
compared; a namespace captured without ``files=`` has objects but no files,
so then the files are not compared.

The JSON form (:meth:`Diff.to_json`) is stable; its schema is documented in
``docs/diff-json.md`` and carries ``"schema": "snapkit.diff/1"``.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from snapkit.errors import UsageError
from snapkit.snapshot import Snapshot
from snapkit.snapshot import open as open_snapshot
from snapkit.store.repository import Repository, is_id_prefix
from snapkit.workspace.manifest import (
    BlobRef,
    FileEntry,
    Libraries,
    Manifest,
    ObjectEntry,
)

if TYPE_CHECKING:
    from snapkit.capture import CaptureReport

__all__ = [
    "SCHEMA",
    "Diff",
    "FileChange",
    "LibrariesDiff",
    "LibraryChange",
    "ObjectChange",
    "Source",
    "Totals",
    "blob_stored_sizes",
    "compare_versions",
    "diff",
    "diff_sources",
    "format_size",
    "is_server_id",
    "load_source",
    "open_server_snapshot",
    "opened_sources",
    "text_patch",
]

log = logging.getLogger(__name__)

SCHEMA = "snapkit.diff/1"
#: The file that marks a directory as a local store, not a workspace.
STORE_MARKER = "snapkit-store"


# -- sources -------------------------------------------------------------------


def is_server_id(spec: str) -> bool:
    """Whether ``spec`` names a server snapshot rather than a local path.

    True for 4 to 64 hex digits (an id or a prefix of one) when no file or
    folder of that name exists.
    """
    return is_id_prefix(spec) and not os.path.exists(spec)


def open_server_snapshot(spec: str) -> Snapshot:
    """Open snapshot ``spec`` (an id or prefix) on the configured server.

    The returned snapshot owns its :class:`~snapkit.remote.client.Client`:
    closing it closes the client. Raises :class:`~snapkit.errors.UsageError`
    when the client extra is not installed, and what the client raises for a
    missing login or an unknown id.
    """
    try:
        # Lazy: the client needs httpx, which only the client extra installs.
        from snapkit.remote.client import Client
    except ImportError as exc:
        raise UsageError(
            f"{spec!r} is not a file, and reading server snapshots needs the "
            "client extra: pip install 'snapkit[client]'"
        ) from exc
    return open_snapshot(Client(), spec, close_repository=True)


@dataclass
class Source:
    """One side of a diff or the subject of an audit, resolved to a manifest.

    ``repository`` is set when the bytes are reachable (an archive, a store, a
    server); it is used for exact stored sizes and for ``--patch``. ``live`` is
    true for a workspace captured as a dry run, and ``root`` is its directory.

    A source that :func:`load_source` opened from a path or an id owns that
    snapshot (and its archive or client); :meth:`close` releases it. A source
    built from a snapshot or a repository the caller holds owns nothing.
    """

    manifest: Manifest
    label: str
    snapshot_id: str | None = None
    repository: Repository | None = None
    live: bool = False
    root: Path | None = None
    #: True when the source has no namespace (a directory): objects are unknown.
    files_only: bool = False
    #: True for a namespace captured without ``files=``: files are unknown.
    objects_only: bool = False
    #: Kept from a live scan: ``(path, rule)`` pairs and likely secrets.
    ignored: list[tuple[str, str]] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    #: Live side only: (path, rule) for files a negation or --include kept.
    kept: list[tuple[str, str]] = field(default_factory=list)
    #: What :func:`load_source` opened for this source, closed by :meth:`close`.
    opened: list[Snapshot] = field(default_factory=list)

    def close(self) -> None:
        """Close what :func:`load_source` opened for this source (idempotent)."""
        while self.opened:
            self.opened.pop().close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _from_snapshot(snap: Snapshot, label: str) -> Source:
    return Source(
        manifest=snap.manifest,
        label=label,
        snapshot_id=snap.id,
        repository=snap.repository,
    )


def _dry_run(**capture_options: Any) -> tuple[Manifest, CaptureReport]:
    # Imported here: capture pulls in the chunker and the object pickler,
    # which a diff of two manifests never needs.
    from snapkit.capture import CaptureReport, capture

    report = CaptureReport()
    snap = capture(dry_run=True, report=report, **capture_options)
    return snap.manifest, report


def _live_directory(root: Path, **capture_options: Any) -> Source:
    options = {k: v for k, v in capture_options.items() if k != "include"}
    manifest, report = _dry_run(files=root, **options)
    return Source(
        manifest,
        f"{root} (live)",
        live=True,
        root=root,
        files_only=True,
        ignored=list(report.ignored),
        secrets=list(report.secrets),
        kept=list(report.kept),
    )


def load_source(source: Any, **capture_options: Any) -> Source:
    """Resolve anything a diff or audit accepts into a :class:`Source`.

    A string is a workspace directory, an archive or store path (optionally
    ``path#id-prefix`` or ``path#latest``), or, when no such path exists and
    it is 4 to 64 hex digits, a snapshot id on the configured server. A
    namespace dict is captured as a dry run with ``capture_options``; without
    ``files=`` it has no files, so a diff does not compare them.

    The caller must :meth:`Source.close` the result (or use it in ``with``)
    when the source was a path or an id. Raises
    :class:`~snapkit.errors.NotFoundError` for a path that does not exist
    and :class:`~snapkit.errors.UsageError` for a value of the wrong kind.
    """
    if isinstance(source, Source):
        return source
    if isinstance(source, Manifest):
        # Its id would cost a full encode and hash (a second on 100,000 files);
        # a manifest passed bare is labelled by name instead.
        return Source(source, source.name or "manifest")
    if isinstance(source, tuple) and len(source) == 2:
        repo, snap_id = source
        if not isinstance(repo, Repository):
            raise UsageError(
                f"cannot diff {source!r}: a pair must be (repository, snapshot id)"
            )
        manifest = repo.snapshot(str(snap_id))
        return Source(
            manifest, f"{repo.where}#{manifest.id[:12]}", manifest.id, repository=repo
        )
    if isinstance(source, Mapping):
        manifest, report = _dry_run(namespace=source, **capture_options)
        root = capture_options.get("files")
        return Source(
            manifest,
            "namespace (live)",
            live=True,
            root=Path(root) if root is not None else None,
            objects_only=root is None,
            ignored=list(report.ignored),
            secrets=list(report.secrets),
            kept=list(report.kept),
        )
    if isinstance(source, (str, os.PathLike)):
        return _load_path(os.fspath(source), **capture_options)
    if isinstance(source, Snapshot):
        return _from_snapshot(source, f"{source.repository.where}#{source.id[:12]}")
    raise UsageError(
        f"cannot use {type(source).__name__} as a snapshot; give a manifest, a "
        "snapshot, an archive path, a server snapshot id, a (repository, id) "
        "pair, a directory or a namespace dict"
    )


def _load_path(text: str, **capture_options: Any) -> Source:
    path = Path(text)
    if path.is_dir() and not (path / STORE_MARKER).exists():
        return _live_directory(path, **capture_options)
    # An archive (optionally file.snap#id-prefix or #latest), a store folder,
    # or a bare id naming a snapshot on the server.
    snap = open_server_snapshot(text) if is_server_id(text) else open_snapshot(text)
    src = _from_snapshot(snap, text)
    src.opened.append(snap)
    return src


@contextmanager
def opened_sources(*sources: Any, **capture_options: Any) -> Iterator[list[Source]]:
    """Resolve ``sources`` with :func:`load_source`; close what it opened on exit.

    A :class:`Source` passed in is used as it is and left open: its owner
    closes it. If one side fails to resolve, those already opened are closed.
    """
    with ExitStack() as stack:
        out = []
        for given in sources:
            src = load_source(given, **capture_options)
            if src is not given:
                stack.callback(src.close)
            out.append(src)
        yield out


# -- result model ----------------------------------------------------------------


@dataclass(frozen=True)
class ObjectChange:
    """One object that was added, removed or changed."""

    name: str
    status: str  # "added", "removed" or "changed"
    type_before: str | None
    type_after: str | None
    size_before: int | None
    size_after: int | None
    #: Human-readable differences of the ``summary`` dicts (shape, dtype, ...).
    details: tuple[str, ...] = ()
    #: Share of the new object's bytes in chunks the old object lacks.
    changed_share: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "type_before": self.type_before,
            "type_after": self.type_after,
            "size_before": self.size_before,
            "size_after": self.size_after,
            "details": list(self.details),
            "changed_share": self.changed_share,
        }


@dataclass(frozen=True)
class FileChange:
    """One path that was added, removed, modified or had its mode changed.

    ``status`` is ``"modified"`` when the content (or symlink target, or kind)
    changed, whether or not the mode changed too; ``"mode"`` when only the
    mode did.
    """

    path: str
    status: str  # "added", "removed", "modified" or "mode"
    kind: str
    size_before: int | None
    size_after: int | None
    mode_before: int | None
    mode_after: int | None

    @property
    def size_delta(self) -> int:
        return (self.size_after or 0) - (self.size_before or 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "kind": self.kind,
            "size_before": self.size_before,
            "size_after": self.size_after,
            "size_delta": self.size_delta,
            "mode_before": _mode_text(self.mode_before),
            "mode_after": _mode_text(self.mode_after),
        }


@dataclass(frozen=True)
class LibraryChange:
    """One distribution added, removed, upgraded, downgraded or re-sourced."""

    name: str
    status: str  # "added", "removed", "upgraded", "downgraded" or "changed"
    version_before: str | None
    version_after: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "version_before": self.version_before,
            "version_after": self.version_after,
        }


@dataclass(frozen=True)
class LibrariesDiff:
    python_before: str
    python_after: str
    distributions: tuple[LibraryChange, ...] = ()
    required_added: tuple[str, ...] = ()
    required_removed: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(
            self.python_before != self.python_after
            or self.distributions
            or self.required_added
            or self.required_removed
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "python_before": self.python_before,
            "python_after": self.python_after,
            "distributions": [d.to_json() for d in self.distributions],
            "required_added": list(self.required_added),
            "required_removed": list(self.required_removed),
        }


@dataclass(frozen=True)
class Totals:
    """Byte counts over unique blobs, so shared content counts once."""

    #: Raw bytes in blobs of B that A lacks, and in blobs of A that B lacks.
    bytes_added: int
    bytes_removed: int
    blobs_shared: int
    blobs_added: int
    blobs_removed: int
    #: What pushing B to a repository that holds A would upload (stored bytes).
    upload_bytes: int
    #: False when some stored sizes were estimated from entry totals.
    upload_exact: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "bytes_added": self.bytes_added,
            "bytes_removed": self.bytes_removed,
            "blobs_shared": self.blobs_shared,
            "blobs_added": self.blobs_added,
            "blobs_removed": self.blobs_removed,
            "upload_bytes": self.upload_bytes,
            "upload_exact": self.upload_exact,
        }


@dataclass(frozen=True)
class Diff:
    """The differences from snapshot ``a`` to snapshot ``b``."""

    a: str
    b: str
    a_id: str | None
    b_id: str | None
    objects: tuple[ObjectChange, ...]
    files: tuple[FileChange, ...]
    libraries: LibrariesDiff
    totals: Totals
    #: False when one side is a directory, which has no objects to compare.
    objects_compared: bool = True
    #: False when one side is a namespace captured without files.
    files_compared: bool = True

    @property
    def changed(self) -> bool:
        return bool(self.objects or self.files or self.libraries.changed)

    def to_json(self) -> dict[str, Any]:
        """Return the documented JSON document (``docs/diff-json.md``)."""
        return {
            "schema": SCHEMA,
            "a": {"label": self.a, "id": self.a_id},
            "b": {"label": self.b, "id": self.b_id},
            "changed": self.changed,
            "objects_compared": self.objects_compared,
            "files_compared": self.files_compared,
            "objects": [o.to_json() for o in self.objects],
            "files": [f.to_json() for f in self.files],
            "libraries": self.libraries.to_json(),
            "totals": self.totals.to_json(),
        }

    def render(self, stat: bool = False) -> str:
        """Return the diff as aligned plain text (``stat``: counts only)."""
        return _render(self, stat)


# -- comparing -----------------------------------------------------------------


def diff(a: Any, b: Any, **capture_options: Any) -> Diff:
    """Compare ``a`` (before) with ``b`` (after); see :func:`load_source`.

    ``capture_options`` (``files``, ``exclude``, ``on_unpicklable``, ...) go
    to the dry-run capture of a side that is a live namespace or directory:
    ``diff("a.snap", globals(), exclude=["scratch"])``. A namespace side
    without ``files=`` has no files, so files are not compared; a directory
    side has no objects, so objects are not compared.

    Reads no blob. Archives and server connections opened here are closed
    before returning. Raises what :func:`load_source` raises for a side that
    cannot be resolved.
    """
    with opened_sources(a, b, **capture_options) as (sa, sb):
        return diff_sources(sa, sb)


def diff_sources(sa: Source, sb: Source) -> Diff:
    """Compare two resolved sources (the engine behind :func:`diff`)."""
    ma, mb = sa.manifest, sb.manifest
    compare_objects = not (sa.files_only or sb.files_only)
    compare_files = not (sa.objects_only or sb.objects_only)
    objects = _diff_objects(ma.objects, mb.objects) if compare_objects else []
    files = _diff_files(ma.files, mb.files) if compare_files else []
    libraries = _diff_libraries(ma.libraries, mb.libraries, compare_objects)
    totals = _totals(sa, sb, compare_objects, compare_files)
    log.info(
        "diff %s -> %s: %d objects, %d files, %d distributions changed",
        sa.label,
        sb.label,
        len(objects),
        len(files),
        len(libraries.distributions),
    )
    return Diff(
        a=sa.label,
        b=sb.label,
        a_id=sa.snapshot_id,
        b_id=sb.snapshot_id,
        objects=tuple(objects),
        files=tuple(files),
        libraries=libraries,
        totals=totals,
        objects_compared=compare_objects,
        files_compared=compare_files,
    )


def _diff_objects(
    before: list[ObjectEntry], after: list[ObjectEntry]
) -> list[ObjectChange]:
    old = {o.name: o for o in before}
    new = {o.name: o for o in after}
    out: list[ObjectChange] = []
    for name in sorted(old.keys() | new.keys()):
        oa, ob = old.get(name), new.get(name)
        if oa is None and ob is not None:
            out.append(
                ObjectChange(
                    name,
                    "added",
                    None,
                    ob.type,
                    None,
                    ob.raw_size,
                    _describe(ob.summary),
                )
            )
        elif ob is None and oa is not None:
            out.append(ObjectChange(name, "removed", oa.type, None, oa.raw_size, None))
        elif oa is not None and ob is not None and oa.content_id != ob.content_id:
            out.append(
                ObjectChange(
                    name,
                    "changed",
                    oa.type,
                    ob.type,
                    oa.raw_size,
                    ob.raw_size,
                    tuple(_summary_changes(oa, ob)),
                    _changed_share(oa, ob),
                )
            )
    return out


def _describe(summary: Mapping[str, Any]) -> tuple[str, ...]:
    keys = ("shape", "dtype", "columns", "length")
    return tuple(f"{k} {_short(summary[k])}" for k in keys if k in summary)


def _short(value: Any, limit: int = 60) -> str:
    if isinstance(value, list) and all(isinstance(x, int) for x in value):
        text = "(" + ", ".join(map(str, value)) + ("," if len(value) == 1 else "") + ")"
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _summary_changes(oa: ObjectEntry, ob: ObjectEntry) -> Iterator[str]:
    if oa.type != ob.type:
        yield f"type {oa.type} → {ob.type}"
    sa, sb = oa.summary, ob.summary
    for key in sorted(sa.keys() | sb.keys()):
        va, vb = sa.get(key), sb.get(key)
        if va == vb:
            continue
        if _is_names(va) and _is_names(vb):
            set_a, set_b = set(va), set(vb)
            added = [x for x in vb if x not in set_a]
            removed = [x for x in va if x not in set_b]
            if added:
                yield f"{key} added: {_short(', '.join(map(str, added)))}"
            if removed:
                yield f"{key} removed: {_short(', '.join(map(str, removed)))}"
            if not added and not removed:
                yield f"{key} reordered"
        else:
            yield f"{key} {_short(va)} → {_short(vb)}"


def _is_names(value: Any) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


def _changed_share(oa: ObjectEntry, ob: ObjectEntry) -> float | None:
    total = ob.raw_size
    if total == 0:
        return None
    old_ids = {bid for bid, _ in oa.blob_refs()}
    fresh = sum(size for bid, size in _unique(ob.blob_refs()) if bid not in old_ids)
    return round(fresh / total, 4)


def _unique(refs: Iterable[BlobRef]) -> Iterator[BlobRef]:
    seen: set[str] = set()
    for bid, size in refs:
        if bid not in seen:
            seen.add(bid)
            yield bid, size


def _diff_files(before: list[FileEntry], after: list[FileEntry]) -> list[FileChange]:
    old = {f.path: f for f in before}
    new = {f.path: f for f in after}
    out: list[FileChange] = []
    for path in old.keys() - new.keys():
        f = old[path]
        out.append(FileChange(path, "removed", f.kind, f.size, None, f.mode, None))
    for path in new.keys() - old.keys():
        f = new[path]
        out.append(FileChange(path, "added", f.kind, None, f.size, None, f.mode))
    for path in old.keys() & new.keys():
        fa, fb = old[path], new[path]
        # Comparing the blob lists is what content_id hashes, without hashing.
        same = fa.kind == fb.kind and fa.blobs == fb.blobs and fa.target == fb.target
        if not same:
            status = "modified"
        elif _perm(fa.mode) != _perm(fb.mode):
            status = "mode"
        else:
            continue
        out.append(
            FileChange(path, status, fb.kind, fa.size, fb.size, fa.mode, fb.mode)
        )
    out.sort(key=lambda c: c.path)
    return out


def _perm(mode: int) -> int:
    return mode & 0o7777


def _mode_text(mode: int | None) -> str | None:
    return None if mode is None else f"{_perm(mode):04o}"


# -- libraries -------------------------------------------------------------------


_PART = re.compile(r"\d+|[a-z]+")
_PRE = {"dev": -4, "a": -3, "alpha": -3, "b": -2, "beta": -2, "rc": -1, "c": -1}


def _fallback_key(version: str) -> tuple[tuple[int, int | str], ...]:
    # Numbers compare as numbers; pre-release words sort before the release
    # they precede; anything else sorts after numbers of the same position.
    key: list[tuple[int, int | str]] = []
    for part in _PART.findall(version.lower().split("+")[0]):
        if part.isdigit():
            key.append((1, int(part)))
        elif part in _PRE:
            key.append((0, _PRE[part]))
        elif part == "post":
            key.append((2, 0))
        else:
            key.append((0, part))
    while key and key[-1] == (1, 0):
        key.pop()
    return tuple(key)


def compare_versions(a: str, b: str) -> int:
    """Return -1, 0 or 1 as version ``a`` is older, equal or newer than ``b``.

    Uses :mod:`packaging.version` when it is installed and the versions parse
    under PEP 440; otherwise a tolerant comparison of numeric and word parts.
    """
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:  # pragma: no cover - packaging is nearly always there
        pass
    else:
        try:
            va, vb = Version(a), Version(b)
        except InvalidVersion:
            pass
        else:
            return (va > vb) - (va < vb)
    ka, kb = _fallback_key(a), _fallback_key(b)
    try:
        return (ka > kb) - (ka < kb)
    except TypeError:
        return (a > b) - (a < b)


def _diff_libraries(la: Libraries, lb: Libraries, required: bool) -> LibrariesDiff:
    old = {d.name: d for d in la.distributions}
    new = {d.name: d for d in lb.distributions}
    changes: list[LibraryChange] = []
    for name in sorted(old.keys() | new.keys()):
        da, db = old.get(name), new.get(name)
        if da is None and db is not None:
            changes.append(LibraryChange(name, "added", None, db.version))
        elif db is None and da is not None:
            changes.append(LibraryChange(name, "removed", da.version, None))
        elif da is not None and db is not None:
            order = compare_versions(da.version, db.version)
            if order < 0:
                changes.append(LibraryChange(name, "upgraded", da.version, db.version))
            elif order > 0:
                changes.append(
                    LibraryChange(name, "downgraded", da.version, db.version)
                )
            elif da.version != db.version or da.url != db.url:
                changes.append(LibraryChange(name, "changed", da.version, db.version))
    # A live directory imports nothing, so its required set says nothing.
    req_a, req_b = (set(la.required), set(lb.required)) if required else (set(), set())
    return LibrariesDiff(
        python_before=la.python_version,
        python_after=lb.python_version,
        distributions=tuple(changes),
        required_added=tuple(sorted(req_b - req_a)),
        required_removed=tuple(sorted(req_a - req_b)),
    )


# -- totals --------------------------------------------------------------------


def blob_stored_sizes(
    manifest: Manifest,
    objects: bool = True,
    wanted: set[str] | None = None,
    files: bool = True,
) -> dict[str, int]:
    """Estimate each blob's stored size from its entry's stored total.

    An entry records one stored size for all its blobs; each blob gets the
    share of it its raw size has. Entries without a stored size (unknown, or
    all their blobs were already stored by an earlier entry) count raw for
    blobs no other entry prices. With ``wanted``, only entries holding one of
    those blobs are looked at (the rest of the result is incomplete).
    ``objects`` and ``files`` choose which entries count.
    """
    entries: list[tuple[int, int, list[BlobRef]]] = []
    if files:
        entries += [(f.stored_size, f.size, f.blobs) for f in manifest.files]
    if objects:
        entries += [
            (o.stored_size, o.raw_size, list(o.blob_refs())) for o in manifest.objects
        ]
    if wanted is not None:
        entries = [e for e in entries if any(b in wanted for b, _ in e[2])]
    out: dict[str, int] = {}
    for stored, raw, refs in entries:
        if stored and raw:
            ratio = stored / raw
            for bid, size in refs:
                out.setdefault(bid, round(size * ratio))
    for _, _, refs in entries:
        for bid, size in refs:
            out.setdefault(bid, size)
    return out


def _raw_sizes(manifest: Manifest, objects: bool, files: bool) -> dict[str, int]:
    refs: dict[str, int] = {}
    if files:
        for f in manifest.files:
            for bid, size in f.blobs:
                refs[bid] = size
    if objects:
        for o in manifest.objects:
            for bid, size in o.blob_refs():
                refs[bid] = size
    return refs


def _totals(sa: Source, sb: Source, objects: bool, files: bool) -> Totals:
    ra = _raw_sizes(sa.manifest, objects, files)
    rb = _raw_sizes(sb.manifest, objects, files)
    ids_a, ids_b = ra.keys(), rb.keys()
    fresh = set(ids_b - ids_a)
    gone = ids_a - ids_b

    exact = False
    stored: dict[str, int] = {}
    if sb.repository is not None and fresh:
        try:
            stored = sb.repository.stored_sizes(fresh)
            exact = len(stored) == len(fresh)
        except Exception as exc:  # a size query is an estimate's nicety only
            log.warning("cannot read stored sizes from %s: %s", sb.label, exc)
    if not exact:
        estimate = blob_stored_sizes(sb.manifest, objects, wanted=fresh, files=files)
        stored = {bid: stored.get(bid, estimate[bid]) for bid in fresh}
    return Totals(
        bytes_added=sum(rb[b] for b in fresh),
        bytes_removed=sum(ra[b] for b in gone),
        blobs_shared=len(ids_a & ids_b),
        blobs_added=len(fresh),
        blobs_removed=len(gone),
        upload_bytes=sum(stored.values()),
        upload_exact=exact or not fresh,
    )


# -- text output ---------------------------------------------------------------


def format_size(n: int | float | None) -> str:
    """Return ``n`` bytes as a short decimal size (``1.5 MB``)."""
    if n is None:
        return "-"
    sign = "-" if n < 0 else ""
    value = float(abs(n))
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            text = f"{int(value)}" if unit == "B" else f"{value:.1f}"
            return f"{sign}{text} {unit}"
        value /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def _signed(n: int) -> str:
    return ("+" if n > 0 else "") + format_size(n) if n else "0"


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=True)]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


_MARK = {
    "added": "+",
    "removed": "-",
    "changed": "~",
    "modified": "~",
    "mode": "m",
    "upgraded": "↑",
    "downgraded": "↓",
}


def _render(d: Diff, stat: bool) -> str:
    lines = [f"diff {d.a} → {d.b}"]
    if not d.changed:
        lines.append("no differences")
    counts = _counts(d)
    if stat:
        lines += [f"  {k}: {v}" for k, v in counts.items()]
    else:
        lines += _render_objects(d) + _render_files(d) + _render_libraries(d)
    t = d.totals
    approx = "" if t.upload_exact else "~"
    lines.append(
        f"totals: +{format_size(t.bytes_added)} -{format_size(t.bytes_removed)} raw, "
        f"{t.blobs_shared} blobs shared, {t.blobs_added} new; "
        f"a push of B after A uploads {approx}{format_size(t.upload_bytes)}"
    )
    return "\n".join(lines) + "\n"


def _counts(d: Diff) -> dict[str, str]:
    def tally(items: Iterable[str]) -> str:
        seen: dict[str, int] = {}
        for s in items:
            seen[s] = seen.get(s, 0) + 1
        return ", ".join(f"{n} {s}" for s, n in seen.items()) or "unchanged"

    out = {
        "objects": tally(o.status for o in d.objects)
        if d.objects_compared
        else "not compared (live directory)",
        "files": tally(f.status for f in d.files)
        if d.files_compared
        else "not compared (namespace without files)",
        "libraries": tally(x.status for x in d.libraries.distributions),
    }
    if d.libraries.python_before != d.libraries.python_after:
        out["python"] = f"{d.libraries.python_before} → {d.libraries.python_after}"
    return out


def _render_objects(d: Diff) -> list[str]:
    if not d.objects_compared:
        return ["objects: not compared (a live directory has no namespace)"]
    if not d.objects:
        return []
    rows = []
    for o in d.objects:
        types = o.type_after or o.type_before or ""
        if o.type_before and o.type_after and o.type_before != o.type_after:
            types = f"{o.type_before} → {o.type_after}"
        sizes = _size_pair(o.size_before, o.size_after)
        notes = list(o.details)
        if o.changed_share is not None:
            notes.append(f"{o.changed_share:.0%} of chunks new")
        rows.append([_MARK[o.status], o.name, types, sizes, "; ".join(notes)])
    return ["objects:", *_table(rows)]


def _size_pair(before: int | None, after: int | None) -> str:
    if before is None:
        return format_size(after)
    if after is None:
        return format_size(before)
    if before == after:
        return format_size(after)
    return f"{format_size(before)} → {format_size(after)}"


def _render_files(d: Diff) -> list[str]:
    if not d.files_compared:
        return ["files: not compared (the namespace was captured without files)"]
    if not d.files:
        return []
    rows = []
    for f in d.files:
        note = ""
        if (
            f.mode_before is not None
            and f.mode_after is not None
            and (_perm(f.mode_before) != _perm(f.mode_after))
        ):
            note = f"mode {_mode_text(f.mode_before)} → {_mode_text(f.mode_after)}"
        delta = _signed(f.size_delta) if f.status != "mode" else ""
        rows.append([_MARK[f.status], f.path, delta, note])
    return ["files:", *_table(rows)]


def _render_libraries(d: Diff) -> list[str]:
    lib = d.libraries
    if not lib.changed:
        return []
    lines = ["libraries:"]
    if lib.python_before != lib.python_after:
        lines.append(f"  python {lib.python_before} → {lib.python_after}")
    rows = [
        [
            _MARK.get(c.status, "~"),
            c.name,
            c.version_before or "",
            "→" if c.version_before and c.version_after else "",
            c.version_after or "",
            c.status,
        ]
        for c in lib.distributions
    ]
    lines += _table(rows)
    if lib.required_added:
        lines.append("  now required: " + ", ".join(lib.required_added))
    if lib.required_removed:
        lines.append("  no longer required: " + ", ".join(lib.required_removed))
    return lines


# -- patches -------------------------------------------------------------------

#: Files larger than this (either side) get no ``--patch`` text.
PATCH_MAX_SIZE = 256 * 1024


def _read_file(src: Source, entry: FileEntry) -> bytes | None:
    if src.live and src.root is not None:
        return (src.root / entry.path).read_bytes()
    if src.repository is None:
        return None
    return b"".join(src.repository.get(bid) for bid, _ in entry.blobs)


def _as_text(data: bytes | None) -> list[str] | None:
    if data is None or b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return None


def text_patch(d: Diff, sa: Source, sb: Source) -> Iterator[str]:
    """Yield unified-diff lines for the small text files ``d`` lists.

    Reads file blobs (verified, through the repository) or the live files.
    Files over :data:`PATCH_MAX_SIZE` or not UTF-8 text are named, not shown.
    """
    old = {f.path: f for f in sa.manifest.files}
    new = {f.path: f for f in sb.manifest.files}
    for change in d.files:
        if change.kind != "file" or change.status == "mode":
            continue
        fa, fb = old.get(change.path), new.get(change.path)
        if max((fa.size if fa else 0), (fb.size if fb else 0)) > PATCH_MAX_SIZE:
            yield f"Binary or large file {change.path} differs (not shown)\n"
            continue
        before = _as_text(_read_file(sa, fa)) if fa else []
        after = _as_text(_read_file(sb, fb)) if fb else []
        if before is None or after is None:
            yield f"Binary file {change.path} differs (not shown)\n"
            continue
        yield from difflib.unified_diff(
            before,
            after,
            fromfile=f"a/{change.path}" if fa else "/dev/null",
            tofile=f"b/{change.path}" if fb else "/dev/null",
        )
