"""Restore a snapshot: files onto disk, objects into a namespace.

Files stay inside the root, whatever the manifest says:

* a path must be relative, made of plain components (no ``..``, ``.``, empty
  parts, NUL bytes or backslashes), and unique;
* no file is written through a symlink: every parent inside the root must be a
  real directory (checked with ``lstat`` right before writing), and symlinks
  from the snapshot are created last, after every file;
* only regular files, directories and symlinks are created (the manifest
  format has no other kind); setuid, setgid and sticky bits are dropped;
* an existing file that differs from the snapshot, in its bytes or only in
  its mode, is not changed unless ``force=True``; all such conflicts are
  found before anything is written. A mode-only difference is then fixed
  with ``chmod``, not by writing the file again;
* a folder in the way of a file, or a file in the way of a folder, is never
  replaced; a symlink where the snapshot has a folder is refused as
  :class:`~snapkit.errors.UnsafePathError`, ``force`` or not;
* each file is written to a temporary name beside it (``.snapkit-*.tmp``,
  short whatever the file's name), checked blob by blob, and renamed into
  place, so a damaged blob never leaves a half file.

When objects are to be loaded, the recorded environment is compared with the
running one (see :func:`snapkit.workspace.libraries.check_environment`)
before any file is written, so a strict check that fails leaves the disk
untouched. When none are, the comparison is only reported.
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
from snapkit.workspace.libraries import EnvReport
from snapkit.workspace.manifest import FileEntry

__all__ = ["RestoreResult", "check_path", "restore"]

log = logging.getLogger(__name__)

_PERMISSION_BITS = 0o777


@dataclass
class RestoreResult:
    """What a restore did. Each restored path is in exactly one list."""

    snapshot_id: str
    into: Path | None = None
    #: Paths created or (with ``force``) overwritten.
    written: list[str] = field(default_factory=list)
    #: Files whose bytes matched but whose mode did not: chmod-ed (``force``).
    mode_changed: list[str] = field(default_factory=list)
    #: Paths already exactly as in the snapshot, left alone.
    unchanged: list[str] = field(default_factory=list)
    objects: dict[str, Any] = field(default_factory=dict)
    #: The comparison of recorded and running libraries, when the snapshot
    #: has objects; None when it has none.
    environment: EnvReport | None = None


@dataclass
class _Plan:
    write: list[FileEntry] = field(default_factory=list)
    chmod: list[FileEntry] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


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


def _plan(root: Path, entries: list[FileEntry], force: bool) -> _Plan:
    """Sort entries into what to write, what to chmod and what is identical.

    Raises before anything is written: UnsafePathError for a symlink where a
    folder goes, OverwriteError for conflicts (``force`` settles only those
    where a file or link would replace a file or link).
    """
    plan = _Plan()
    conflicts: list[str] = []
    blocked: list[str] = []
    for e in entries:
        rel = check_path(e.path)
        target = _safe_parent(root, rel, create=False) / rel.name
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            plan.write.append(e)
            continue
        if e.kind == "dir":
            if stat.S_ISLNK(st.st_mode):
                raise UnsafePathError(
                    f"refusing to restore folder {e.path}: {target} is a symlink, "
                    "and restore never writes through one. Remove it or restore "
                    "into an empty folder"
                )
            if stat.S_ISDIR(st.st_mode):
                plan.unchanged.append(e.path)
            else:
                blocked.append(f"{e.path} (a file is in the way of a folder)")
            continue
        if stat.S_ISDIR(st.st_mode):
            blocked.append(f"{e.path} (a folder is in the way)")
            continue
        if e.kind == "file" and _same_content(target, e):
            here, there = st.st_mode & _PERMISSION_BITS, e.mode & _PERMISSION_BITS
            if here == there:
                plan.unchanged.append(e.path)
            elif force:
                plan.chmod.append(e)
            else:
                conflicts.append(f"{e.path} (mode {here:04o}, snapshot {there:04o})")
            continue
        if (
            e.kind == "symlink"
            and stat.S_ISLNK(st.st_mode)
            and os.readlink(target) == e.target
        ):
            plan.unchanged.append(e.path)
        elif force:
            plan.write.append(e)
        else:
            conflicts.append(e.path)
    if blocked:
        raise OverwriteError(
            f"restore cannot put {len(blocked)} path(s) in place: {_few(blocked)}. "
            "Nothing was written. Move them out of the way (--force does not "
            "replace a folder or a file by the other), or restore into another "
            "folder"
        )
    if conflicts:
        raise OverwriteError(
            f"restore would overwrite {len(conflicts)} file(s) that differ from the "
            f"snapshot: {_few(conflicts)}. Nothing was written. Use --force "
            "(force=True) to overwrite them, or restore into another folder"
        )
    return plan


def _few(items: list[str]) -> str:
    return ", ".join(items[:5]) + (" ..." if len(items) > 5 else "")


def _temp_name(parent: Path) -> Path:
    # Not derived from the file's name: a name near the 255-byte limit of a
    # path component would not leave room for a prefix and a suffix.
    return parent / f".snapkit-{secrets.token_hex(8)}.tmp"


def _write_file(reader: BlobReader, root: Path, e: FileEntry, where: str) -> None:
    rel = check_path(e.path)
    parent = _safe_parent(root, rel, create=True)
    final = parent / rel.name
    tmp = _temp_name(parent)
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
    tmp = _temp_name(parent)
    os.symlink(e.target, tmp)
    try:
        with contextlib.suppress(OSError):
            os.utime(tmp, ns=(e.mtime_ns, e.mtime_ns), follow_symlinks=False)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _make_dir(root: Path, e: FileEntry) -> None:
    rel = check_path(e.path)
    target = _safe_parent(root, rel, create=True) / rel.name
    with contextlib.suppress(FileExistsError):
        os.mkdir(target, 0o755)
    # Set the mode through a descriptor of the folder itself: a symlink put
    # in its place since the plan fails to open here instead of being followed.
    try:
        fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        raise UnsafePathError(
            f"refusing to restore folder {e.path}: {target} is not a folder (a "
            "symlink?), and restore never writes through one. Remove it or "
            "restore into an empty folder"
        ) from exc
    try:
        os.fchmod(fd, e.mode & _PERMISSION_BITS)
    finally:
        os.close(fd)


def _change_mode(root: Path, e: FileEntry) -> None:
    rel = check_path(e.path)
    target = _safe_parent(root, rel, create=False) / rel.name
    try:
        os.chmod(target, e.mode & _PERMISSION_BITS, follow_symlinks=False)
    except NotImplementedError as exc:
        # Linux cannot chmod a symlink itself: the file became one meanwhile.
        raise UnsafePathError(
            f"refusing to change the mode of {e.path}: {target} is now a symlink, "
            "and restore never writes through one"
        ) from exc


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

    plan = _plan(root, entries, force)
    result.unchanged = plan.unchanged
    where = f"snapshot {snap.id[:12]}"
    with BlobReader(snap.repository) as reader:
        for e in sorted(plan.write, key=lambda e: e.path):
            if e.kind == "dir":
                _make_dir(root, e)
            elif e.kind == "file":
                _write_file(reader, root, e, where)
            else:
                continue
            result.written.append(e.path)
    for e in plan.chmod:
        _change_mode(root, e)
        result.mode_changed.append(e.path)
    # Links last, so no file above could have been written through one.
    for e in plan.write:
        if e.kind == "symlink":
            _make_link(root, e)
            result.written.append(e.path)
    log.info(
        "restored %d files into %s (%d modes changed, %d already identical)",
        len(result.written),
        root,
        len(result.mode_changed),
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
    ``objects=[]``.

    Object names and the environment are checked before any file is
    written: missing required libraries raise
    :class:`~snapkit.errors.EnvironmentMismatchError` with the disk
    untouched, unless ``strict=False``. With ``objects=[]`` nothing is
    unpickled, so the comparison never fails: it is logged as warnings and
    kept in ``result.environment``.
    """
    snap = open_snapshot(source, snapshot_id)
    try:
        if into is None and files is not None:
            raise UsageError("files= needs into= to say where to write them")
        names = list(objects) if objects is not None else snap.objects
        for name in names:
            snap.entry(name)
        environment = None
        if names:
            environment = snap.check_environment(strict=strict)
        elif snap.manifest.objects:
            environment = snap.check_environment(strict=False)

        result = RestoreResult(snap.id)
        if into is not None:
            result = restore_files(snap, into, files, force)
        result.environment = environment
        if names:
            loaded = snap.load_all(names, strict=strict)
            result.objects = loaded
            if namespace is not None:
                namespace.update(loaded)
        return result
    finally:
        if snap is not source:
            snap.close()
