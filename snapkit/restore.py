"""Restore a snapshot: files onto disk, objects into a namespace.

Files stay inside the root, whatever the manifest says:

* a path must be relative, made of plain components (no ``..``, ``.``, empty
  parts, NUL bytes or backslashes), and unique;
* no file is written through a symlink: every parent inside the root must be a
  real directory (checked with ``lstat`` right before writing), and symlinks
  from the snapshot are created last, after every file;
* only regular files, directories and symlinks are created (the manifest
  format has no other kind); setuid, setgid and sticky bits are dropped;
* an existing file that differs from the snapshot is not overwritten unless
  ``force=True``; all such conflicts are found before anything is written;
* each file is written to a temporary name beside it, checked blob by blob,
  and renamed into place, so a damaged blob never leaves a half file.

Objects load only after the recorded environment is compared with the running
one (see :func:`snapkit.workspace.libraries.check_environment`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import stat
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from snapkit.errors import OverwriteError, UnsafePathError, UsageError
from snapkit.snapshot import Snapshot, Source
from snapkit.snapshot import open as open_snapshot
from snapkit.store.chunker import BlobReader
from snapkit.store.codec import blob_id
from snapkit.workspace.manifest import FileEntry

__all__ = ["RestoreResult", "check_path", "restore"]

log = logging.getLogger(__name__)

_PERMISSION_BITS = 0o777


@dataclass
class RestoreResult:
    """What a restore did."""

    snapshot_id: str
    into: Path | None = None
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    objects: dict[str, Any] = field(default_factory=dict)


def check_path(path: str) -> PurePosixPath:
    """Return ``path`` as a safe relative path, or raise UnsafePathError."""
    bad = (
        not path
        or "\x00" in path
        or "\\" in path
        or path.startswith("/")
        or any(part in ("", ".", "..") for part in path.split("/"))
    )
    if bad:
        raise UnsafePathError(
            f"refusing to restore {path!r}: not a plain relative path inside the "
            "root. The snapshot is damaged or hostile; do not restore it"
        )
    return PurePosixPath(path)


def _select_files(
    entries: Sequence[FileEntry], only: Iterable[str] | None
) -> list[FileEntry]:
    if only is None:
        return list(entries)
    wanted = list(only)
    chosen = [
        e
        for e in entries
        if any(e.path == w or e.path.startswith(w.rstrip("/") + "/") for w in wanted)
    ]
    unmatched = [
        w
        for w in wanted
        if not any(
            e.path == w or e.path.startswith(w.rstrip("/") + "/") for e in entries
        )
    ]
    if unmatched:
        raise UsageError(
            f"the snapshot has no file or folder {unmatched[0]!r}; "
            "see `snapkit show` for its files"
        )
    return chosen


def _safe_parent(root: Path, rel: PurePosixPath, create: bool) -> Path:
    """Return the real directory that will hold ``rel``, never via a symlink."""
    current = root
    for part in rel.parts[:-1]:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            if not create:
                return current
            os.mkdir(current, 0o755)
            continue
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePathError(
                f"refusing to write {rel}: {current} is a symlink, and restore never "
                "writes through one. Remove it or restore into an empty folder"
            )
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafePathError(
                f"refusing to write {rel}: {current} exists and is not a folder"
            )
    return current


def _check_nesting(entries: Sequence[FileEntry]) -> None:
    """Reject a path listed below another entry that is not a folder.

    A manifest with a symlink ``link`` and a file ``link/x`` would otherwise
    write ``link/`` as a folder first and then fail to put the link over it.
    """
    not_dirs = {e.path: e.kind for e in entries if e.kind != "dir"}
    for e in entries:
        parent = e.path.rpartition("/")[0]
        while parent:
            if parent in not_dirs:
                raise UnsafePathError(
                    f"refusing to restore {e.path!r}: the snapshot also lists "
                    f"{parent!r} as a {not_dirs[parent]}, not a folder. The "
                    "snapshot is damaged or hostile; do not restore it"
                )
            parent = parent.rpartition("/")[0]


def _same_content(path: Path, entry: FileEntry) -> bool:
    """Whether the file at ``path`` already holds exactly ``entry``'s bytes."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != entry.size:
        return False
    with open(path, "rb") as f:
        for bid, size in entry.blobs:
            if blob_id(f.read(size)) != bid:
                return False
    return True


def _plan(
    root: Path, entries: list[FileEntry], force: bool
) -> tuple[list[FileEntry], list[str]]:
    """Split entries into those to write and those already identical."""
    to_write: list[FileEntry] = []
    unchanged: list[str] = []
    conflicts: list[str] = []
    for e in entries:
        rel = check_path(e.path)
        target = _safe_parent(root, rel, create=False) / rel.name
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            to_write.append(e)
            continue
        if e.kind == "file" and _same_content(target, e):
            unchanged.append(e.path)
            if (st.st_mode & _PERMISSION_BITS) != (e.mode & _PERMISSION_BITS):
                to_write.append(e)
            continue
        if e.kind == "dir" and stat.S_ISDIR(st.st_mode):
            unchanged.append(e.path)
            continue
        if (
            e.kind == "symlink"
            and stat.S_ISLNK(st.st_mode)
            and os.readlink(target) == e.target
        ):
            unchanged.append(e.path)
            continue
        if stat.S_ISDIR(st.st_mode):
            conflicts.append(f"{e.path} (a folder is in the way)")
        elif not force:
            conflicts.append(e.path)
        else:
            to_write.append(e)
    if conflicts:
        shown = ", ".join(conflicts[:5]) + (" ..." if len(conflicts) > 5 else "")
        raise OverwriteError(
            f"restore would overwrite {len(conflicts)} file(s) that differ from the "
            f"snapshot: {shown}. Nothing was written. Use --force (force=True) to "
            "overwrite them, or restore into another folder"
        )
    return to_write, unchanged


def _write_file(reader: BlobReader, root: Path, e: FileEntry, where: str) -> None:
    rel = check_path(e.path)
    parent = _safe_parent(root, rel, create=True)
    final = parent / rel.name
    tmp = parent / f".{rel.name}.snapkit-{secrets.token_hex(4)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            for data in reader.iter_chunks(e.blobs, f"{where} file {e.path}"):
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, e.mode & _PERMISSION_BITS)
        os.utime(tmp, ns=(e.mtime_ns, e.mtime_ns))
        # The parent may have been swapped for a symlink while we wrote.
        _safe_parent(root, rel, create=False)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _make_link(root: Path, e: FileEntry) -> None:
    rel = check_path(e.path)
    parent = _safe_parent(root, rel, create=True)
    final = parent / rel.name
    if e.target is None:
        raise UnsafePathError(f"symlink {e.path} in the snapshot has no target")
    tmp = parent / f".{rel.name}.snapkit-{secrets.token_hex(4)}"
    os.symlink(e.target, tmp)
    try:
        with contextlib.suppress(OSError):
            os.utime(tmp, ns=(e.mtime_ns, e.mtime_ns), follow_symlinks=False)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def restore_files(
    snap: Snapshot,
    into: str | os.PathLike[str],
    only: Iterable[str] | None = None,
    force: bool = False,
) -> RestoreResult:
    """Write the snapshot's files under ``into`` (created if absent)."""
    root = Path(into)
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    result = RestoreResult(snap.id, into=root)
    entries = _select_files(snap.manifest.files, only)
    seen: set[str] = set()
    for e in entries:
        check_path(e.path)
        if e.path in seen:
            raise UnsafePathError(f"the snapshot lists {e.path!r} twice; it is damaged")
        seen.add(e.path)
    _check_nesting(entries)

    to_write, result.unchanged = _plan(root, entries, force)
    where = f"snapshot {snap.id[:12]}"
    with BlobReader(snap.repository) as reader:
        for e in sorted(to_write, key=lambda e: e.path):
            if e.kind == "dir":
                rel = check_path(e.path)
                target = _safe_parent(root, rel, create=True) / rel.name
                try:
                    os.mkdir(target, 0o755)
                except OSError as exc:
                    if exc.errno != errno.EEXIST:
                        raise
                os.chmod(target, e.mode & _PERMISSION_BITS, follow_symlinks=False)
            elif e.kind == "file":
                _write_file(reader, root, e, where)
            else:
                continue
            result.written.append(e.path)
    # Links last, so no file above could have been written through one.
    for e in to_write:
        if e.kind == "symlink":
            _make_link(root, e)
            result.written.append(e.path)
    log.info(
        "restored %d files into %s (%d already identical)",
        len(result.written),
        root,
        len(result.unchanged),
    )
    return result


def restore(
    source: Source | Snapshot,
    into: str | os.PathLike[str] | None = None,
    namespace: MutableMapping[str, Any] | None = None,
    objects: Iterable[str] | None = None,
    files: Iterable[str] | None = None,
    force: bool = False,
    strict: bool = True,
    snapshot_id: str | None = None,
) -> RestoreResult:
    """Restore files into ``into`` and objects into ``namespace`` (or the result).

    ``source`` is a :class:`Snapshot`, an archive or store path (optionally
    ``PATH#ID``), or a repository with ``snapshot_id``. ``objects`` and
    ``files`` limit what is restored (names, and paths or folders). Files are
    restored only when ``into`` is given; objects are loaded unless
    ``objects=[]``. With ``strict=False`` objects load even when required
    libraries are missing.
    """
    snap = open_snapshot(source, snapshot_id)
    try:
        result = RestoreResult(snap.id)
        if into is not None:
            result = restore_files(snap, into, files, force)
        elif files is not None:
            raise UsageError("files= needs into= to say where to write them")
        names = list(objects) if objects is not None else snap.objects
        if names:
            loaded = snap.load_all(names, strict=strict)
            result.objects = loaded
            if namespace is not None:
                namespace.update(loaded)
        return result
    finally:
        if snap is not source:
            snap.close()
