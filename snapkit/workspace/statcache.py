"""The stat cache: recognise unchanged files without reading them.

For each destination repository, the cache remembers which blobs a file's
bytes were cut into, keyed by what ``lstat`` says about the file: path, size,
mtime (ns), ctime (ns), inode and device. A file whose stat still matches is
assumed to hold the same bytes, so capture can skip reading, hashing and
compressing it. The ctime is there for the writes that keep size and mtime
(``cp -p``, ``touch -r``, ``os.utime``): the kernel sets it on every change
and no program can set it back, as git relies on too. A chmod changes it as
well, which costs one needless re-read.

Contract:

* The cache is advisory. A missing file, or one of another format, gives an
  empty cache; a damaged one gives an empty cache and a warning; a failed
  save is a warning. None of them fails a capture.
* Sections are per repository key (chosen by the caller, e.g. the archive
  path or server URL plus user): blobs known to be in repository A say
  nothing about B. :meth:`StatCache.lookup` only says which blobs the file
  was cut into; the caller must still ask the repository's ``missing()``.
* An entry is keyed by the stat the scan took (the
  :class:`~snapkit.workspace.files.Candidate`), before the file was read; the
  cache takes no stat of its own. A file changed after the scan gets a later
  ctime than the recorded one (to within the kernel's clock tick), so what
  was read from it is never trusted by a later capture. A hit trusts the
  scan's stat: the capture then holds the file as the scan saw it.
* Racy files are never trusted nor recorded: a file modified within
  :data:`RACY_WINDOW_NS` before the scan started may change again within the
  same timestamp tick without its stat changing (git's "racy clean" problem).
* :meth:`StatCache.save` writes a temporary file, fsyncs it and renames it
  over the old one, so a crash leaves the old cache or the new one. It keeps
  only the entries this run looked up or recorded, so deleted files do not
  accumulate, and it re-reads the file first so other repositories' sections
  written meanwhile survive.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snapkit.errors import FormatError
from snapkit.store import serial
from snapkit.workspace.manifest import BlobRef

if TYPE_CHECKING:
    from snapkit.workspace.files import Candidate

__all__ = [
    "CACHE_FORMAT",
    "RACY_WINDOW_NS",
    "CacheEntry",
    "StatCache",
    "default_cache_path",
]

log = logging.getLogger(__name__)

CACHE_FORMAT = 2
#: Timestamp granularity assumed for every filesystem (FAT has 2 s, ext4 has
#: ns but the kernel clock ticks coarser); 1 s covers everything but FAT.
RACY_WINDOW_NS = 1_000_000_000


def default_cache_path(root: str | os.PathLike[str]) -> Path:
    """Return where the stat cache of workspace ``root`` lives.

    ``$SNAPKIT_CACHE_DIR/statcache/<sha256 of the real root path>.msgpack``,
    where the cache dir defaults to ``$XDG_CACHE_HOME/snapkit`` and then to
    ``~/.cache/snapkit``. A relative ``XDG_CACHE_HOME`` is ignored, as the XDG
    spec says.
    """
    override = os.environ.get("SNAPKIT_CACHE_DIR")
    if override:
        base = Path(override).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        cache_home = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
        base = cache_home / "snapkit"
    real_root = os.path.realpath(os.fspath(root))
    digest = hashlib.sha256(os.fsencode(real_root)).hexdigest()
    return base / "statcache" / f"{digest}.msgpack"


@dataclass(frozen=True)
class CacheEntry:
    """What the cache knows about one path in one repository section."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int
    refs: list[BlobRef]
    stored_size: int

    def fits(self, c: Candidate) -> bool:
        """Whether the scan saw this entry's file in ``c``, unchanged."""
        here = (self.size, self.mtime_ns, self.ctime_ns, self.inode, self.device)
        return here == (c.size, c.mtime_ns, c.ctime_ns, c.inode, c.device)


Section = dict[str, CacheEntry]


class StatCache:
    """The stat cache of one workspace, used for one destination repository.

    Obtain it with :meth:`load`. ``scan_started_ns`` is the wall-clock time,
    taken before the scan, against which racy files are judged; it defaults
    to the time of :meth:`load`, so load the cache before scanning.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        repo_key: str,
        *,
        scan_started_ns: int | None = None,
        sections: dict[str, Section] | None = None,
    ) -> None:
        self.path = Path(path)
        self.repo_key = repo_key
        self.scan_started_ns = (
            time.time_ns() if scan_started_ns is None else scan_started_ns
        )
        self._sections: dict[str, Section] = sections if sections is not None else {}
        self._touched: Section = {}

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        repo_key: str,
        *,
        scan_started_ns: int | None = None,
    ) -> StatCache:
        """Read the cache at ``path``; missing or damaged gives an empty cache."""
        started = time.time_ns() if scan_started_ns is None else scan_started_ns
        return cls(
            path, repo_key, scan_started_ns=started, sections=_read_sections(Path(path))
        )

    def is_racy(self, c: Candidate) -> bool:
        """Whether ``c`` changed too close to the scan to trust its stat."""
        return c.mtime_ns >= self.scan_started_ns - RACY_WINDOW_NS

    def lookup(self, c: Candidate) -> tuple[list[BlobRef], int] | None:
        """Return (blob refs, stored size) for an unchanged file, else None.

        None for anything but a regular file, a path not cached, a stat that
        differs in size, mtime, ctime, inode or device, or a racy mtime.
        """
        if c.kind != "file" or self.is_racy(c):
            return None
        entry = self._sections.get(self.repo_key, {}).get(c.path)
        if entry is None or not entry.fits(c):
            return None
        self._touched[c.path] = entry
        return list(entry.refs), entry.stored_size

    def record(self, c: Candidate, refs: list[BlobRef], stored_size: int) -> None:
        """Remember that ``c`` was cut into ``refs``, now stored in the repository.

        Call it only once every blob in ``refs`` is durable in the repository
        this cache is keyed to, with ``c`` from a scan taken before the file
        was read (the entry is keyed by that stat). Racy files and non-files
        are not recorded.
        """
        if c.kind != "file" or self.is_racy(c):
            return
        entry = CacheEntry(
            c.size, c.mtime_ns, c.ctime_ns, c.inode, c.device, list(refs), stored_size
        )
        self._sections.setdefault(self.repo_key, {})[c.path] = entry
        self._touched[c.path] = entry

    def entries_for_repository(self, repo_key: str) -> dict[str, CacheEntry]:
        """Return a copy of the section of ``repo_key`` (path → entry)."""
        return dict(self._sections.get(repo_key, {}))

    def save(self) -> None:
        """Write this repository's section atomically; warn instead of failing."""
        sections = _read_sections(self.path, quiet=True)
        sections[self.repo_key] = dict(self._touched)
        self._sections = sections
        data = serial.pack(_to_wire(sections))
        try:
            _write_atomic(self.path, data)
        except OSError as exc:
            log.warning(
                "could not save the stat cache %s (%s); the next capture will "
                "read every file again",
                self.path,
                exc,
            )
            return
        log.debug(
            "saved stat cache %s: %d entries for %s",
            self.path,
            len(self._touched),
            self.repo_key,
        )


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # Make the rename itself durable; not every platform can fsync a directory.
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _to_wire(sections: dict[str, Section]) -> dict[str, Any]:
    return {
        "format": CACHE_FORMAT,
        "repositories": {
            key: [
                [
                    path,
                    e.size,
                    e.mtime_ns,
                    e.ctime_ns,
                    e.inode,
                    e.device,
                    [[bid, size] for bid, size in e.refs],
                    e.stored_size,
                ]
                for path, e in sorted(section.items())
            ]
            for key, section in sorted(sections.items())
        },
    }


def _read_sections(path: Path, quiet: bool = False) -> dict[str, Section]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        if not quiet:
            log.warning("cannot read the stat cache %s (%s); starting empty", path, exc)
        return {}
    try:
        doc = serial.unpack(data, f"stat cache {path}")
        if _is_other_format(doc):
            # Written by another snapkit version: not damage, just unusable.
            log.info("the stat cache %s has another format; starting empty", path)
            return {}
        return _from_wire(doc)
    except (FormatError, ValueError, TypeError) as exc:
        if not quiet:
            log.warning(
                "the stat cache %s is damaged (%s); starting empty, every file "
                "will be read again",
                path,
                exc,
            )
        return {}


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"expected a non-negative int, got {value!r}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a str, got {type(value).__name__}")
    return value


def _is_other_format(doc: Any) -> bool:
    if not isinstance(doc, dict):
        return False
    found = doc.get("format")
    return isinstance(found, int) and found != CACHE_FORMAT


def _from_wire(doc: Any) -> dict[str, Section]:
    if not isinstance(doc, dict) or doc.get("format") != CACHE_FORMAT:
        raise ValueError(f"not a stat cache of format {CACHE_FORMAT}")
    repositories = doc.get("repositories")
    if not isinstance(repositories, dict):
        raise ValueError("repositories is not a map")
    sections: dict[str, Section] = {}
    for key, rows in repositories.items():
        if not isinstance(rows, list):
            raise ValueError(f"section {key!r} is not a list")
        section: Section = {}
        for row in rows:
            if not isinstance(row, list) or len(row) != 8:
                raise ValueError(f"section {key!r} has a malformed entry")
            if not isinstance(row[6], list):
                raise ValueError(f"section {key!r} has malformed blob refs")
            refs: list[BlobRef] = []
            for ref in row[6]:
                if not isinstance(ref, list) or len(ref) != 2:
                    raise ValueError(f"section {key!r} has a malformed blob ref")
                refs.append((_str(ref[0]), _int(ref[1])))
            section[_str(row[0])] = CacheEntry(
                _int(row[1]),
                _int(row[2]),
                _int(row[3]),
                _int(row[4]),
                _int(row[5]),
                refs,
                _int(row[7]),
            )
        sections[_str(key)] = section
    return sections
