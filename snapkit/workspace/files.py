"""The files part of a workspace: which paths under a root a capture takes.

:func:`scan` walks the root without following symlinks and returns a
:class:`Scan`: the candidates to capture (regular files, symlinks as links,
directories with nothing kept below them), every path left out with the rule
that left it out, and the files left out because they look like secrets.

Contract:

* Nothing outside the root is read. Symlinks are recorded with their target
  text and never followed, so a link to a directory elsewhere is one entry.
* An excluded directory is not opened, so a huge or unreadable tree under
  ``node_modules/`` costs nothing. git cannot re-include a file below an
  excluded directory and neither can a ``.snapignore``; only an ``--include``
  naming a path through it (``--include data/raw/x.csv``) reaches inside.
* Precedence, highest first: secrets (unless ``allow_secrets``), then
  ``--include``, then ``--exclude``, then ``.snapignore`` files (deepest
  first), then the built-in defaults. See :mod:`snapkit.workspace.ignore`.
* A directory is recorded only when nothing below it is kept (it is empty,
  or everything in it was left out), so restore recreates it; any other
  directory is implied by the paths below it.
* Sockets, FIFOs and device files are never captured; they are listed in
  ``ignored`` with the reason ``"not a regular file"``. A directory that
  cannot be read is listed with the reason and logged as a warning.

Reading file contents, chunking and the stat cache are the caller's business
(see :mod:`snapkit.workspace.statcache`); a scan only stats.
"""

from __future__ import annotations

import functools
import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from snapkit.errors import NotFoundError, UsageError
from snapkit.workspace.ignore import (
    IGNORE_FILE,
    SECRET_PATTERNS,
    VIRTUALENV_MARKER,
    IgnoreFile,
    RuleSet,
    compile_patterns,
    is_secret,
    last_match,
)
from snapkit.workspace.statcache import StatCache, default_cache_path

__all__ = [
    "NOT_REGULAR",
    "SECRET_PATTERNS",
    "Candidate",
    "Scan",
    "StatCache",
    "default_cache_path",
    "scan",
]

log = logging.getLogger(__name__)

#: Reason given in ``Scan.ignored`` for sockets, FIFOs and device files.
NOT_REGULAR = "not a regular file"


@dataclass(frozen=True)
class Candidate:
    """One path a capture should record, as it was when the scan saw it."""

    path: str  # POSIX, relative to the root
    kind: str  # "file", "symlink" or "dir"
    mode: int  # permission bits (st_mode & 0o7777)
    size: int
    mtime_ns: int
    #: Set by the kernel on every change; no program can set it back.
    ctime_ns: int
    inode: int
    device: int
    target: str | None  # os.readlink text, for symlinks only
    abspath: Path


@dataclass
class Scan:
    """What :func:`scan` found under ``root``."""

    root: Path
    #: Candidates to capture, sorted by path.
    entries: list[Candidate] = field(default_factory=list)
    #: (path, rule label) for every path left out by a rule, sorted by path.
    ignored: list[tuple[str, str]] = field(default_factory=list)
    #: Paths left out because their name looks like a secret, sorted.
    secrets: list[str] = field(default_factory=list)
    #: (path, rule label) for every candidate a rule kept: a ``!negation``
    #: or an ``--include``. Candidates no rule matched are not listed.
    kept: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Dir:
    """A directory waiting on the walk's stack."""

    path: str  # "" for the root
    chain: tuple[IgnoreFile, ...]
    #: True inside an excluded directory entered only because an --include
    #: might name something below it: nothing else there is kept or reported.
    pruned: bool


def scan(
    root: str | os.PathLike[str] | None = None,
    *,
    exclude: Sequence[str] = (),
    include: Sequence[str] = (),
    use_defaults: bool = True,
    allow_secrets: bool = False,
) -> Scan:
    """Walk ``root`` (default: the current directory) and judge every path.

    ``exclude`` and ``include`` are gitignore patterns read relative to the
    root, as if written in the root ``.snapignore`` (``*.log`` matches at any
    depth, ``/build`` only at the top). An ``include`` keeps what it matches
    even if ``--exclude``, ``.snapignore`` or the defaults exclude it, but
    keeps a secret only with ``allow_secrets``. Secrets are judged by name
    for files and symlinks alike.
    ``use_defaults=False`` turns off the built-in defaults and virtualenv
    detection. Raises :class:`NotFoundError` if ``root`` does not exist and
    :class:`UsageError` if it is not a directory.
    """
    base = Path(os.path.abspath(os.fspath(root) if root is not None else os.curdir))
    if not base.exists():
        raise NotFoundError(
            f"workspace root {str(base)!r} does not exist; pass an existing "
            "directory as files="
        )
    if not base.is_dir():
        raise UsageError(
            f"workspace root {str(base)!r} is not a directory; pass the directory "
            "that holds the files to capture"
        )

    rules = RuleSet(exclude=exclude, include=include, use_defaults=use_defaults)
    result = Scan(root=base)
    visited_dirs: list[Candidate] = []
    stack = [_Dir("", (), pruned=False)]
    while stack:
        current = stack.pop()
        children = _walk_one(base, current, rules, allow_secrets, result, visited_dirs)
        # Reversed so the walk goes in name order; the result is sorted anyway.
        stack.extend(reversed(children))

    _add_empty_dirs(result, visited_dirs)
    result.entries.sort(key=lambda c: c.path)
    result.ignored.sort()
    result.secrets.sort()
    result.kept.sort()
    log.info(
        "scanned %s: %d entries, %d ignored, %d secrets left out",
        base,
        len(result.entries),
        len(result.ignored),
        len(result.secrets),
    )
    return result


def _walk_one(
    base: Path,
    current: _Dir,
    rules: RuleSet,
    allow_secrets: bool,
    result: Scan,
    visited_dirs: list[Candidate],
) -> list[_Dir]:
    """Judge the entries of one directory; return the subdirectories to enter."""
    directory = base / current.path if current.path else base
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        why = f"unreadable directory ({exc.strerror or exc})"
        log.warning("skipping %s: %s", directory, why)
        result.ignored.append((current.path or ".", why))
        # Not an empty directory to recreate: its content is unknown.
        visited_dirs[:] = [d for d in visited_dirs if d.path != current.path]
        return []

    chain = current.chain
    if not current.pruned:
        ignore_file = _read_ignore_file(current.path, entries)
        if ignore_file is not None:
            chain = (*chain, ignore_file)

    subdirs: list[_Dir] = []
    for entry in entries:
        path = f"{current.path}/{entry.name}" if current.path else entry.name
        is_dir = entry.is_dir(follow_symlinks=False)

        reason: str | None = None
        if current.pruned:
            verdict_excluded = True
        else:
            marker = os.path.join(entry.path, VIRTUALENV_MARKER)
            venv = functools.partial(os.path.isfile, marker) if is_dir else None
            verdict = rules.judge(path, is_dir, chain, is_virtualenv=venv)
            verdict_excluded, reason = verdict.excluded, verdict.reason
        if verdict_excluded:
            rescue = last_match(rules.include, path, is_dir)
            if rescue is not None and not rescue.negated:
                verdict_excluded, reason = False, rescue.label

        if verdict_excluded:
            if is_dir and rules.include_may_reach(path):
                subdirs.append(_Dir(path, chain, pruned=True))
            if reason is not None:
                result.ignored.append((path, reason))
            continue

        is_link = entry.is_symlink()
        if not is_dir and not is_link and not entry.is_file(follow_symlinks=False):
            result.ignored.append((path, NOT_REGULAR))
            continue
        if not is_dir and not allow_secrets and is_secret(entry.name):
            log.warning(
                "left out %s: its name looks like a secret; pass allow_secrets "
                "(--allow-secrets) to capture it",
                path,
            )
            result.secrets.append(path)
            continue

        try:
            st = entry.stat(follow_symlinks=False)
            target = os.readlink(entry.path) if is_link else None
        except OSError as exc:
            # Deleted or replaced between listing and stat: skip it, loudly.
            why = f"vanished during scan ({exc.strerror or exc})"
            log.warning("skipping %s: %s", path, why)
            result.ignored.append((path, why))
            continue
        if is_dir:
            visited_dirs.append(_candidate(path, "dir", st, entry.path, None))
            subdirs.append(_Dir(path, chain, pruned=False))
        else:
            kind = "symlink" if is_link else "file"
            result.entries.append(_candidate(path, kind, st, entry.path, target))
            if reason is not None:
                result.kept.append((path, reason))
    return subdirs


def _candidate(
    path: str, kind: str, st: os.stat_result, abspath: str, target: str | None
) -> Candidate:
    return Candidate(
        path=path,
        kind=kind,
        mode=stat.S_IMODE(st.st_mode),
        size=st.st_size if kind != "dir" else 0,
        mtime_ns=st.st_mtime_ns,
        ctime_ns=st.st_ctime_ns,
        inode=st.st_ino,
        device=st.st_dev,
        target=target,
        abspath=Path(abspath),
    )


def _read_ignore_file(
    directory: str, entries: Sequence[os.DirEntry[str]]
) -> IgnoreFile | None:
    """Compile the ``.snapignore`` among ``entries``, if there is a readable one."""
    for entry in entries:
        # Like git, a symlinked ignore file is not followed.
        if entry.name == IGNORE_FILE and entry.is_file(follow_symlinks=False):
            label = f"{directory}/{IGNORE_FILE}" if directory else IGNORE_FILE
            try:
                with open(entry.path, encoding="utf-8", errors="surrogateescape") as f:
                    lines = f.read().splitlines()
            except OSError as exc:
                log.warning("cannot read %s, its rules are not applied: %s", label, exc)
                return None
            return IgnoreFile(directory, compile_patterns(lines, label))
    return None


def _add_empty_dirs(result: Scan, visited_dirs: list[Candidate]) -> None:
    """Record each entered directory with nothing kept below it.

    Without them a restore would drop empty directories, and directories
    whose every entry was ignored, which a program may expect to exist.
    """
    occupied: set[str] = set()

    def occupy(path: str) -> None:
        parent = path.rpartition("/")[0]
        while parent and parent not in occupied:
            occupied.add(parent)
            parent = parent.rpartition("/")[0]

    for entry in result.entries:
        occupy(entry.path)
    # Deepest first, so a recorded empty directory occupies its parents.
    for directory in sorted(visited_dirs, key=lambda d: -d.path.count("/")):
        if directory.path not in occupied:
            result.entries.append(directory)
            occupy(directory.path)
