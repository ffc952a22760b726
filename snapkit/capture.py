"""Capture a workspace into a repository.

Order of work, which is what makes a capture safe to interrupt:

1. each selected object is pickled (protocol 5, large buffers out of band) and
   its stream and buffers are chunked straight into the repository;
2. each file under the root is chunked into the repository, unless the stat
   cache says it is unchanged and the repository still holds its blobs;
3. the libraries are recorded;
4. the manifest is added last. Until then no snapshot exists, and the blobs
   already written make a retry cheaper.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from snapkit.errors import ObjectError, UsageError
from snapkit.snapshot import Snapshot, open_repository
from snapkit.store import codec
from snapkit.store.chunker import BlobWriter
from snapkit.store.repository import Repository
from snapkit.workspace import files as wsfiles
from snapkit.workspace import libraries as libs
from snapkit.workspace import objects as objs
from snapkit.workspace.manifest import (
    BlobRef,
    FileEntry,
    Manifest,
    ObjectEntry,
    SkippedObject,
)

__all__ = ["CaptureReport", "capture"]

log = logging.getLogger(__name__)


@dataclass
class CaptureReport:
    """What a capture did, for the CLI and for tests."""

    objects: int = 0
    files: int = 0
    files_from_cache: int = 0
    raw_bytes: int = 0
    new_bytes: int = 0
    seconds: float = 0.0
    skipped: list[SkippedObject] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    #: (path, rule) for files a ``!negation`` or an ``--include`` kept.
    kept: list[tuple[str, str]] = field(default_factory=list)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _resolve_target(
    to: str | os.PathLike[str] | Repository | None, dry_run: bool
) -> tuple[Repository | None, bool]:
    if dry_run:
        return None, False
    if to is None:
        raise UsageError(
            "capture needs a destination: to='NAME.snap', a store folder, or a "
            "snapkit.Client; or pass dry_run=True to only measure"
        )
    if isinstance(to, Repository):
        return to, False
    return open_repository(to, mode="a", create=True), True


def _select_objects(
    objects: Mapping[str, Any] | None,
    namespace: Mapping[str, Any] | None,
    include: Sequence[str] | None,
    exclude: Sequence[str],
) -> dict[str, Any]:
    if objects is not None and namespace is not None:
        raise UsageError("pass objects= or namespace=, not both")
    if objects is not None:
        bad = [k for k in objects if not isinstance(k, str) or not k]
        if bad:
            raise UsageError(f"object names must be non-empty strings, got {bad[:3]!r}")
        return {k: v for k, v in sorted(objects.items()) if k not in set(exclude)}
    if namespace is not None:
        return objs.select(namespace, include, exclude)
    if include:
        raise UsageError("include= needs a namespace= to pick the names from")
    return {}


def _capture_object(
    writer: BlobWriter, name: str, value: Any
) -> tuple[ObjectEntry, list[str]]:
    pickled = objs.pickle_object(name, value)
    stream = writer.write(pickled.stream)
    buffers = [writer.write(buf) for buf in pickled.buffers]
    entry = ObjectEntry(
        name=name,
        type=pickled.type,
        pickle=stream.refs,
        buffers=[b.refs for b in buffers],
        stored_size=stream.stored_size + sum(b.stored_size for b in buffers),
        imports=pickled.imports,
        summary=pickled.summary,
    )
    return entry, pickled.imports


def _capture_files(
    writer: BlobWriter,
    repo: Repository | None,
    scan: wsfiles.Scan,
    cache: wsfiles.StatCache | None,
    report: CaptureReport,
) -> list[FileEntry]:
    entries: list[FileEntry] = []
    # One missing() call for every cached file, not one per file: against a
    # server that is the difference between one round trip and thousands.
    hits: dict[str, tuple[list[BlobRef], int]] = {}
    if cache is not None and repo is not None:
        for c in scan.entries:
            hit = cache.lookup(c) if c.kind == "file" else None
            if hit is not None:
                hits[c.path] = hit
        wanted = {bid for refs, _ in hits.values() for bid, _ in refs}
        gone = repo.missing(wanted) if wanted else set()
        hits = {p: h for p, h in hits.items() if not any(b in gone for b, _ in h[0])}
    for c in scan.entries:
        if c.kind != "file":
            entries.append(
                FileEntry(c.path, c.kind, c.mode, 0, c.mtime_ns, [], c.target, 0)
            )
            continue
        if c.path in hits:
            refs, stored = hits[c.path]
            report.files_from_cache += 1
            writer.raw_bytes += c.size
            entries.append(
                FileEntry(
                    c.path, "file", c.mode, c.size, c.mtime_ns, refs, None, stored
                )
            )
            continue
        try:
            result = writer.write_file(c.abspath)
        except FileNotFoundError:
            log.warning("%s vanished during capture; left out", c.path)
            continue
        size = sum(s for _, s in result.refs)
        if size != c.size:
            log.warning(
                "%s changed size during capture (%d -> %d)", c.path, c.size, size
            )
        elif cache is not None:
            cache.record(c, result.refs, result.stored_size)
        entries.append(
            FileEntry(
                c.path,
                "file",
                c.mode,
                size,
                c.mtime_ns,
                result.refs,
                None,
                result.stored_size,
            )
        )
    return entries


def capture(
    objects: Mapping[str, Any] | None = None,
    *,
    namespace: Mapping[str, Any] | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    files: str | os.PathLike[str] | None = None,
    file_exclude: Sequence[str] = (),
    file_include: Sequence[str] = (),
    allow_secrets: bool = False,
    name: str | None = None,
    tags: Sequence[str] = (),
    to: str | os.PathLike[str] | Repository | None = None,
    dry_run: bool = False,
    level: int = codec.DEFAULT_LEVEL,
    on_unpicklable: Literal["raise", "skip"] = "raise",
    use_stat_cache: bool = True,
    report: CaptureReport | None = None,
) -> Snapshot:
    """Capture objects, libraries and files into a new snapshot.

    ``objects`` maps names to values; or give ``namespace`` (e.g. ``globals()``)
    with optional ``include``/``exclude`` name lists, and user variables are
    picked and the rest pruned. ``files`` is the workspace root to capture
    (``None``: no files). ``to`` is a ``.snap`` path (created or added to), a
    store folder, or a repository such as :class:`snapkit.Client`.

    With ``dry_run=True`` nothing is written: blobs are still cut, hashed and
    compressed so the returned snapshot's sizes are real (for audits).

    Raises :class:`~snapkit.errors.ObjectError` for an object that will not
    pickle (unless ``on_unpicklable="skip"``), :class:`~snapkit.errors.UsageError`
    for bad arguments. On any error no snapshot is added.
    """
    if on_unpicklable not in ("raise", "skip"):
        raise UsageError(f"on_unpicklable={on_unpicklable!r} is not 'raise' or 'skip'")
    started = time.perf_counter()
    report = report if report is not None else CaptureReport()
    selected = _select_objects(objects, namespace, include, exclude)
    root = Path(files) if files is not None else None
    if root is not None and not root.is_dir():
        raise UsageError(
            f"files={os.fspath(root)!r} is not a folder; give the workspace root"
        )
    repo, owns = _resolve_target(to, dry_run)

    try:
        with BlobWriter(repo, level=level) as writer:
            entries: list[ObjectEntry] = []
            imports: list[str] = []
            for obj_name, value in selected.items():
                try:
                    entry, used = _capture_object(writer, obj_name, value)
                except ObjectError as exc:
                    if on_unpicklable == "raise":
                        raise
                    why = exc.reason or str(exc)
                    log.warning("skipped object %s: %s", obj_name, why)
                    report.skipped.append(SkippedObject(obj_name, why))
                    continue
                entries.append(entry)
                imports += used

            file_entries: list[FileEntry] = []
            if root is not None:
                cache = None
                if use_stat_cache and repo is not None:
                    # Loaded before the scan: racy files are judged by its time.
                    cache = wsfiles.StatCache.load(
                        wsfiles.default_cache_path(root), repo.where
                    )
                scan = wsfiles.scan(
                    root,
                    exclude=file_exclude,
                    include=file_include,
                    allow_secrets=allow_secrets,
                )
                report.ignored, report.secrets = scan.ignored, scan.secrets
                report.kept = scan.kept
                file_entries = _capture_files(writer, repo, scan, cache, report)
                if cache is not None:
                    cache.save()

            manifest = Manifest(
                name=name or (root.resolve().name if root is not None else "snapshot"),
                created=_now(),
                host=socket.gethostname(),
                tags=sorted(set(tags)),
                objects=entries,
                skipped=list(report.skipped),
                libraries=libs.collect(objs.top_modules(imports)),
                files=file_entries,
            )
            report.raw_bytes, report.new_bytes = writer.raw_bytes, writer.new_bytes
        snapshot_id = repo.add_snapshot(manifest) if repo is not None else manifest.id
    except BaseException:
        if repo is not None and owns:
            repo.abort()
        raise

    report.objects, report.files = len(entries), len(file_entries)
    report.seconds = time.perf_counter() - started
    log.info(
        "captured snapshot %s: %d objects, %d files (%d unchanged), %d bytes, "
        "%d new, in %.2f s",
        snapshot_id[:12],
        report.objects,
        report.files,
        report.files_from_cache,
        report.raw_bytes,
        report.new_bytes,
        report.seconds,
    )
    if repo is not None and owns:
        repo.close()
        repo = open_repository(to, mode="r")  # type: ignore[arg-type]
        return Snapshot(repo, manifest, snapshot_id, owns_repository=True)
    return Snapshot(repo or _NullRepository(), manifest, snapshot_id)


class _NullRepository(Repository):
    """Where a dry run's snapshot lives: it holds nothing."""

    where = "dry run (nothing written)"

    def missing(self, ids: Any) -> set[str]:
        return set(ids)

    def stored_sizes(self, ids: Any) -> dict[str, int]:
        return {}

    def put_raw(self, blob: Any) -> None:
        raise UsageError("a dry-run snapshot cannot store blobs")

    def get_raw(self, blob_id: str) -> Any:
        raise UsageError(
            "a dry-run snapshot holds no bytes; capture it to a repository to load it"
        )

    def add_snapshot(self, manifest: Manifest) -> str:
        raise UsageError("a dry-run snapshot cannot be committed")

    def snapshots(self) -> list[Any]:
        return []

    def snapshot(self, snapshot_id: str) -> Manifest:
        raise UsageError("a dry run holds no snapshots")

    def remove_snapshot(self, snapshot_id: str) -> str:
        raise UsageError("a dry run holds no snapshots")
