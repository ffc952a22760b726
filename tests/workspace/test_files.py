"""The files part of capture: scanning a working directory and the stat cache."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snapkit.errors import NotFoundError, UsageError
from snapkit.store import serial
from snapkit.workspace.files import (
    NOT_REGULAR,
    Candidate,
    StatCache,
    default_cache_path,
    scan,
)
from snapkit.workspace.statcache import CACHE_FORMAT, RACY_WINDOW_NS

BLOB_A = ("a" * 64, 10)
BLOB_B = ("b" * 64, 20)


def touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def paths(root: Path, **kwargs: object) -> set[str]:
    return {c.path for c in scan(root, **kwargs).entries}  # type: ignore[arg-type]


# -- what a scan records ----------------------------------------------------------


def test_entries_carry_stat_fields_and_permission_bits(tmp_path: Path) -> None:
    """A file is recorded with its size, mtime, inode, device and permission bits."""
    script = touch(tmp_path / "bin" / "run.sh", "#!/bin/sh\n")
    script.chmod(0o750)

    (entry,) = scan(tmp_path).entries
    st = script.lstat()

    assert entry == Candidate(
        path="bin/run.sh",
        kind="file",
        mode=0o750,
        size=10,
        mtime_ns=st.st_mtime_ns,
        ctime_ns=st.st_ctime_ns,
        inode=st.st_ino,
        device=st.st_dev,
        target=None,
        abspath=script,
    )


def test_entries_sorted_and_root_defaults_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no root the scan walks the cwd, and entries come sorted by path."""
    for name in ["b.txt", "a/z.txt", "a.txt", "a/b/c.txt"]:
        touch(tmp_path / name)
    monkeypatch.chdir(tmp_path)

    result = scan()

    assert result.root == tmp_path
    assert [c.path for c in result.entries] == sorted(
        ["b.txt", "a/z.txt", "a.txt", "a/b/c.txt"]
    )


def test_symlinks_are_recorded_as_links_and_never_followed(tmp_path: Path) -> None:
    """A link to a directory outside the root is one entry with its target text."""
    outside = tmp_path / "outside"
    touch(outside / "secret-data.csv")
    root = tmp_path / "root"
    touch(root / "real.txt")
    os.symlink(outside, root / "elsewhere")
    os.symlink("real.txt", root / "alias.txt")
    os.symlink("missing", root / "dangling")

    entries = {c.path: c for c in scan(root).entries}

    assert set(entries) == {"real.txt", "elsewhere", "alias.txt", "dangling"}
    assert entries["elsewhere"].kind == "symlink"
    assert entries["elsewhere"].target == str(outside)
    assert entries["alias.txt"].target == "real.txt"
    assert entries["dangling"].kind == "symlink"


def test_empty_directories_are_recorded(tmp_path: Path) -> None:
    """Directories with nothing kept below them are recorded; others are not."""
    (tmp_path / "empty" / "nested").mkdir(parents=True)
    touch(tmp_path / "full" / "f.txt")
    touch(tmp_path / "only_cache" / "__pycache__" / "m.pyc")

    entries = {c.path: c.kind for c in scan(tmp_path).entries}

    assert entries == {
        "empty/nested": "dir",
        "full/f.txt": "file",
        "only_cache": "dir",
    }


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_is_skipped_as_not_a_regular_file(tmp_path: Path) -> None:
    """A FIFO is listed as ignored, never opened (opening one would block)."""
    os.mkfifo(tmp_path / "pipe")
    touch(tmp_path / "ok.txt")

    result = scan(tmp_path)

    assert [c.path for c in result.entries] == ["ok.txt"]
    assert result.ignored == [("pipe", NOT_REGULAR)]


def test_missing_root_and_file_root_are_errors(tmp_path: Path) -> None:
    """A root that is absent or not a directory raises a snapkit error."""
    with pytest.raises(NotFoundError, match="does not exist"):
        scan(tmp_path / "nope")
    with pytest.raises(UsageError, match="not a directory"):
        scan(touch(tmp_path / "file"))


# -- defaults ----------------------------------------------------------------------


def test_defaults_prune_vcs_caches_and_virtualenvs(tmp_path: Path) -> None:
    """.git, __pycache__, *.pyc, .venv and any dir holding pyvenv.cfg are left out."""
    touch(tmp_path / ".git" / "HEAD")
    touch(tmp_path / "pkg" / "__pycache__" / "m.cpython-311.pyc")
    touch(tmp_path / "pkg" / "mod.py")
    touch(tmp_path / "pkg" / "old.pyc")
    touch(tmp_path / ".venv" / "bin" / "python")
    touch(tmp_path / "myenv" / "pyvenv.cfg")
    touch(tmp_path / "myenv" / "lib" / "site.py")
    touch(tmp_path / "env" / "settings.py")  # named env, but no pyvenv.cfg
    touch(tmp_path / "out.snap")

    result = scan(tmp_path)

    assert {c.path for c in result.entries} == {"pkg/mod.py", "env/settings.py"}
    assert dict(result.ignored) == {
        ".git": "default: .git/",
        ".venv": "default: .venv/",
        "myenv": "default: virtualenv (pyvenv.cfg)",
        "out.snap": "default: *.snap",
        "pkg/__pycache__": "default: __pycache__/",
        "pkg/old.pyc": "default: *.pyc",
    }


def test_use_defaults_false_keeps_everything(tmp_path: Path) -> None:
    """Turning the defaults off keeps caches and virtualenvs."""
    touch(tmp_path / "__pycache__" / "m.pyc")
    touch(tmp_path / "myenv" / "pyvenv.cfg")

    assert paths(tmp_path, use_defaults=False) == {
        "__pycache__/m.pyc",
        "myenv/pyvenv.cfg",
    }


def test_snapignore_negation_overrides_a_default(tmp_path: Path) -> None:
    """Defaults rank below .snapignore, like git's core.excludesFile."""
    touch(tmp_path / "node_modules" / "dep.js")
    touch(tmp_path / ".snapignore", "!node_modules/\n")

    assert "node_modules/dep.js" in paths(tmp_path)


def test_excluded_directories_are_never_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk does not list an ignored directory, even an unreadable one."""
    for i in range(50):
        touch(tmp_path / "node_modules" / f"pkg{i}" / "index.js")
    touch(tmp_path / "data" / "big" / "part.bin")
    touch(tmp_path / ".snapignore", "data/\n")
    locked = tmp_path / "node_modules" / "locked"
    locked.mkdir()
    locked.chmod(0)
    touch(tmp_path / "keep.py")
    opened: list[str] = []
    real_scandir = os.scandir

    def recording_scandir(path: str | os.PathLike[str]) -> os._ScandirIterator[str]:
        opened.append(os.path.relpath(path, tmp_path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", recording_scandir)
    try:
        result = scan(tmp_path)
    finally:
        locked.chmod(0o700)

    assert opened == ["."]
    assert [c.path for c in result.entries] == [".snapignore", "keep.py"]
    assert dict(result.ignored) == {
        "data": ".snapignore:1: data/",
        "node_modules": "default: node_modules/",
    }


_LIST_IN_CHILD = """
import json, logging, sys
from snapkit.workspace.files import scan
logging.basicConfig(level=logging.WARNING, format="%(message)s")
result = scan(sys.argv[1])
print(json.dumps({"entries": [c.path for c in result.entries],
                  "ignored": [list(pair) for pair in result.ignored]}))
"""


def _without_root_powers() -> list[str]:
    """A command prefix under which file modes bind, even for root.

    Root reads a mode-000 directory through CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH; util-linux's setpriv starts the child without them.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "running as root needs util-linux's setpriv for this test"
    drop = "-dac_override,-dac_read_search"
    return [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}", "--"]


def test_unreadable_directory_is_reported_not_fatal(tmp_path: Path) -> None:
    """A directory that cannot be listed is logged and listed as ignored.

    The scan runs in a child process that file modes really bind (see
    :func:`_without_root_powers`), so the test means the same as root.
    """
    touch(tmp_path / "ok.txt")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        child = subprocess.run(
            [*_without_root_powers(), sys.executable, "-c", _LIST_IN_CHILD, tmp_path],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        locked.chmod(0o700)

    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout)
    assert result["entries"] == ["ok.txt"]
    assert result["ignored"][0][0] == "locked"
    assert result["ignored"][0][1].startswith("unreadable directory")
    assert "locked" in child.stderr


# -- secrets -------------------------------------------------------------------


def test_secrets_are_left_out_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Files named like credentials are skipped, logged and listed in secrets."""
    for name in [".env", "config/.env.prod", "tls/server.pem", ".ssh/id_ed25519"]:
        touch(tmp_path / name)
    touch(tmp_path / "train.py")

    with caplog.at_level(logging.WARNING, logger="snapkit.workspace.files"):
        result = scan(tmp_path)

    assert [c.path for c in result.entries if c.kind == "file"] == ["train.py"]
    assert result.secrets == [
        ".env",
        ".ssh/id_ed25519",
        "config/.env.prod",
        "tls/server.pem",
    ]
    for name in result.secrets:
        assert name in caplog.text


def test_allow_secrets_keeps_them(tmp_path: Path) -> None:
    """allow_secrets=True captures secret-looking files like any other."""
    touch(tmp_path / ".env")
    touch(tmp_path / "deploy.key")

    result = scan(tmp_path, allow_secrets=True)

    assert [c.path for c in result.entries] == [".env", "deploy.key"]
    assert result.secrets == []


def test_ignored_secret_is_not_reported_as_a_secret(tmp_path: Path) -> None:
    """A secret already excluded by a rule is only listed as ignored."""
    touch(tmp_path / ".env")
    touch(tmp_path / ".snapignore", ".env\n")

    result = scan(tmp_path)

    assert result.secrets == []
    assert result.ignored == [(".env", ".snapignore:1: .env")]


# -- include and exclude ----------------------------------------------------------


def test_exclude_ranks_above_snapignore(tmp_path: Path) -> None:
    """--exclude wins over a .snapignore negation, and names itself as the rule."""
    touch(tmp_path / "run.log")
    touch(tmp_path / ".snapignore", "!run.log\n")

    result = scan(tmp_path, exclude=["*.log"])

    assert [c.path for c in result.entries] == [".snapignore"]
    assert result.ignored == [("run.log", "--exclude *.log")]


def test_include_wins_over_snapignore_and_defaults(tmp_path: Path) -> None:
    """--include keeps paths that .snapignore or the defaults exclude."""
    touch(tmp_path / "data.csv")
    touch(tmp_path / ".snapignore", "*.csv\n")
    touch(tmp_path / "node_modules" / "tool.js")

    kept = paths(tmp_path, include=["data.csv", "node_modules/"])

    assert {"data.csv", "node_modules/tool.js"} <= kept


def test_include_wins_over_exclude(tmp_path: Path) -> None:
    """--include keeps what --exclude would drop."""
    touch(tmp_path / "a.log")
    touch(tmp_path / "b.log")

    assert paths(tmp_path, exclude=["*.log"], include=["a.log"]) == {"a.log"}


def test_include_does_not_rescue_secrets(tmp_path: Path) -> None:
    """--include alone does not capture a secret; allow_secrets does."""
    touch(tmp_path / ".env")

    assert paths(tmp_path, include=[".env"]) == set()
    assert paths(tmp_path, include=[".env"], allow_secrets=True) == {".env"}


def test_include_reaches_into_an_excluded_directory_by_path(tmp_path: Path) -> None:
    """An --include naming a path through an excluded dir keeps just that path."""
    touch(tmp_path / "data" / "raw" / "x.csv")
    touch(tmp_path / "data" / "raw" / "y.csv")
    touch(tmp_path / "data" / "other" / "z.csv")
    touch(tmp_path / ".snapignore", "data/\n")

    assert paths(tmp_path, include=["data/raw/x.csv"]) == {
        ".snapignore",
        "data/raw/x.csv",
    }
    # A bare name does not open excluded directories.
    assert paths(tmp_path, include=["*.csv"]) == {".snapignore"}


# -- stat cache ------------------------------------------------------------------


def aged_file(
    root: Path, name: str, text: str = "hello", age_s: int = 100
) -> Candidate:
    """Write a file with an mtime well in the past, so it is not racy."""
    path = touch(root / name, text)
    past = time.time_ns() - age_s * 1_000_000_000
    os.utime(path, ns=(past, past))
    (entry,) = [c for c in scan(root).entries if c.path == name]
    return entry


def test_stat_cache_round_trip(tmp_path: Path) -> None:
    """A recorded file is found again after save and load."""
    ws = tmp_path / "ws"
    c = aged_file(ws, "model.bin")
    cache_file = tmp_path / "cache.msgpack"

    cache = StatCache.load(cache_file, "archive:a.snap")
    assert cache.lookup(c) is None
    cache.record(c, [BLOB_A, BLOB_B], 25)
    cache.save()

    again = StatCache.load(cache_file, "archive:a.snap")
    assert again.lookup(c) == ([BLOB_A, BLOB_B], 25)
    # The temporary file was renamed into place, not left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.msgpack", "ws"]


def test_changed_size_or_mtime_misses(tmp_path: Path) -> None:
    """A file whose size or mtime changed is not recognised."""
    ws = tmp_path / "ws"
    c = aged_file(ws, "a.txt")
    cache = StatCache.load(tmp_path / "c", "repo")
    cache.record(c, [BLOB_A], 5)
    assert cache.lookup(c) is not None

    grown = aged_file(ws, "a.txt", "hello world")
    assert grown.size != c.size and cache.lookup(grown) is None
    touched = aged_file(ws, "a.txt", "hello", age_s=50)
    assert touched.mtime_ns != c.mtime_ns and cache.lookup(touched) is None


def test_same_size_rewrite_with_mtime_put_back_misses(tmp_path: Path) -> None:
    """``cp -p`` / ``touch -r``: size, mtime and inode match, the ctime does not."""
    ws = tmp_path / "ws"
    c = aged_file(ws, "a.txt", "hello")
    cache_file = tmp_path / "c"
    first = StatCache.load(cache_file, "repo")
    assert first.lookup(c) is None
    first.record(c, [BLOB_A], 5)
    first.save()

    time.sleep(0.05)  # past the kernel clock tick of the recorded ctime
    (ws / "a.txt").write_text("HELLO")
    os.utime(ws / "a.txt", ns=(c.mtime_ns, c.mtime_ns))
    (after,) = [e for e in scan(ws).entries if e.path == "a.txt"]
    assert (after.size, after.mtime_ns, after.inode) == (c.size, c.mtime_ns, c.inode)

    second = StatCache.load(cache_file, "repo")
    assert second.lookup(after) is None
    second.record(after, [BLOB_B], 5)
    assert second.lookup(after) == ([BLOB_B], 5)


def test_file_changed_after_the_scan_is_not_trusted_by_the_next_one(
    tmp_path: Path,
) -> None:
    """What was read after the scan is keyed by the scan's ctime, older than the
    change's: the next scan sees the newer ctime and reads the file again."""
    ws = tmp_path / "ws"
    c = aged_file(ws, "a.txt", "hello")
    time.sleep(0.05)  # past the kernel clock tick of the scanned ctime
    (ws / "a.txt").write_text("HELLO")
    os.utime(ws / "a.txt", ns=(c.mtime_ns, c.mtime_ns))
    cache_file = tmp_path / "c"
    cache = StatCache.load(cache_file, "repo")
    cache.record(c, [BLOB_A], 5)
    assert cache.entries_for_repository("repo")["a.txt"].ctime_ns == c.ctime_ns
    cache.save()

    (after,) = scan(ws).entries
    assert (after.size, after.mtime_ns, after.inode) == (c.size, c.mtime_ns, c.inode)
    assert after.ctime_ns != c.ctime_ns
    assert StatCache.load(cache_file, "repo").lookup(after) is None


def test_lookup_trusts_the_scan_without_a_stat_of_its_own(tmp_path: Path) -> None:
    """A hit is decided from the scan's stat alone: the file is not touched."""
    ws = tmp_path / "ws"
    c = aged_file(ws, "a.txt")
    cache = StatCache.load(tmp_path / "c", "repo")
    cache.record(c, [BLOB_A], 5)
    (ws / "a.txt").unlink()

    assert cache.lookup(c) == ([BLOB_A], 5)


def test_racy_file_is_neither_trusted_nor_recorded(tmp_path: Path) -> None:
    """A file modified within the racy window of the scan start is read again."""
    ws = tmp_path / "ws"
    c = aged_file(ws, "a.txt")
    cache_file = tmp_path / "c"
    old = StatCache.load(cache_file, "repo", scan_started_ns=time.time_ns())
    old.record(c, [BLOB_A], 5)
    old.save()

    # The same stat, but now the scan started within a tick of its mtime.
    racy = StatCache.load(
        cache_file, "repo", scan_started_ns=c.mtime_ns + RACY_WINDOW_NS // 2
    )
    assert racy.is_racy(c)
    assert racy.lookup(c) is None

    fresh = touch(ws / "new.txt")
    (new,) = [e for e in scan(ws).entries if e.path == "new.txt"]
    now = StatCache.load(cache_file, "repo")
    now.record(new, [BLOB_B], 7)
    assert fresh.exists() and now.entries_for_repository("repo").get("new.txt") is None


def test_corrupt_cache_gives_empty_cache_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Damaged cache bytes or a wrong shape start an empty cache, with a warning."""
    c = aged_file(tmp_path / "ws", "a.txt")
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\xc1\x00not msgpack")
    wrong_shape = tmp_path / "shape"
    wrong_shape.write_bytes(
        serial.pack({"format": CACHE_FORMAT, "repositories": {"r": [[1]]}})
    )

    for path in (garbage, wrong_shape):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            cache = StatCache.load(path, "r")
        assert cache.lookup(c) is None
        assert cache.entries_for_repository("r") == {}
        assert "damaged" in caplog.text


def test_cache_of_another_format_is_empty_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A cache an older snapkit wrote (no ctimes) is not damage: start empty."""
    c = aged_file(tmp_path / "ws", "a.txt")
    old = tmp_path / "old"
    row = ["a.txt", c.size, c.mtime_ns, c.inode, c.device, [list(BLOB_A)], 5]
    old.write_bytes(serial.pack({"format": 1, "repositories": {"r": [row]}}))

    with caplog.at_level(logging.WARNING):
        cache = StatCache.load(old, "r")
    assert cache.lookup(c) is None
    assert caplog.records == []


def test_missing_cache_is_empty_and_silent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No cache file yet is the normal first run: empty, no warning."""
    cache = StatCache.load(tmp_path / "none.msgpack", "r")

    assert cache.entries_for_repository("r") == {}
    assert caplog.records == []


def test_sections_per_repository_are_independent(tmp_path: Path) -> None:
    """An entry recorded for repository A is unknown to B, and saving B keeps A."""
    c = aged_file(tmp_path / "ws", "a.txt")
    cache_file = tmp_path / "c"
    a = StatCache.load(cache_file, "A")
    a.record(c, [BLOB_A], 5)
    a.save()

    b = StatCache.load(cache_file, "B")
    assert b.lookup(c) is None
    b.record(c, [BLOB_B], 9)
    b.save()

    final = StatCache.load(cache_file, "A")
    assert final.lookup(c) == ([BLOB_A], 5)
    assert final.entries_for_repository("B")["a.txt"].refs == [BLOB_B]


def test_save_drops_entries_not_seen_this_run(tmp_path: Path) -> None:
    """Entries neither looked up nor recorded (deleted files) are not kept."""
    ws = tmp_path / "ws"
    gone = aged_file(ws, "gone.txt")
    kept = aged_file(ws, "kept.txt")
    cache_file = tmp_path / "c"
    first = StatCache.load(cache_file, "r")
    first.record(gone, [BLOB_A], 1)
    first.record(kept, [BLOB_B], 2)
    first.save()

    second = StatCache.load(cache_file, "r")
    assert second.lookup(kept) is not None
    second.save()

    assert set(StatCache.load(cache_file, "r").entries_for_repository("r")) == {
        "kept.txt"
    }


def test_symlinks_and_dirs_are_not_cached(tmp_path: Path) -> None:
    """Only regular files go through the cache."""
    ws = tmp_path / "ws"
    ws.mkdir()
    os.symlink("target", ws / "link")
    (link,) = scan(ws).entries
    cache = StatCache.load(tmp_path / "c", "r", scan_started_ns=time.time_ns() * 2)

    cache.record(link, [BLOB_A], 1)

    assert cache.lookup(link) is None
    assert cache.entries_for_repository("r") == {}


def test_default_cache_path_honours_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SNAPKIT_CACHE_DIR beats XDG_CACHE_HOME, which beats ~/.cache."""
    root = tmp_path / "ws"
    root.mkdir()
    monkeypatch.delenv("SNAPKIT_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    home_path = default_cache_path(root)

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    xdg_path = default_cache_path(root)

    monkeypatch.setenv("SNAPKIT_CACHE_DIR", str(tmp_path / "sk"))
    override_path = default_cache_path(root)

    assert home_path.parent == tmp_path / "home" / ".cache" / "snapkit" / "statcache"
    assert xdg_path.parent == tmp_path / "xdg" / "snapkit" / "statcache"
    assert override_path.parent == tmp_path / "sk" / "statcache"
    assert home_path.name == xdg_path.name == override_path.name
    assert home_path.suffix == ".msgpack" and len(home_path.stem) == 64
    # The same workspace reached through a symlink shares one cache.
    os.symlink(root, tmp_path / "alias")
    assert default_cache_path(tmp_path / "alias") == override_path


def test_mode_bits_exclude_file_type(tmp_path: Path) -> None:
    """mode keeps permission bits (including setuid) but not the file type."""
    f = touch(tmp_path / "tool")
    f.chmod(0o4755)

    (entry,) = scan(tmp_path).entries

    assert entry.mode == 0o4755
    assert not stat.S_ISREG(entry.mode)
