"""Restore: path safety against hand-made hostile manifests, overwrites, damage.

Every hostile case checks two things besides the error: nothing appeared
outside the restore root, and (where restore promises to check before
writing) nothing appeared inside it either.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from capture_fixtures import (
    GHOST,
    file_entry,
    hostile_archive,
    isolated_cache,
    make_workspace,
    needs_a_ghost,
    ref,
    temp_leftovers,
    tree,
)

import snapkit
from snapkit.errors import (
    EnvironmentMismatchError,
    FormatError,
    IntegrityError,
    NotFoundError,
    OverwriteError,
    UnsafePathError,
)
from snapkit.store.archive import Archive
from snapkit.workspace.manifest import FileEntry

__all__ = ["isolated_cache"]

PAYLOAD = b"pwned\n"


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """An empty restore root and an empty sentinel folder beside it."""
    root = tmp_path / "box" / "root"
    outside = tmp_path / "box" / "outside"
    root.mkdir(parents=True)
    outside.mkdir()
    return root, outside


def _outside_untouched(tmp_path: Path, before: set[str]) -> None:
    after = {p for p in tree(tmp_path / "box") if not p.startswith("root/")}
    assert after == before


BAD_PATHS = {
    "dotdot": "../escape",
    "dotdot-inside": "a/../../b",
    "dot": "./x",
    "empty": "",
    "nul": "a\x00b",
    "backslash": "..\\escape",
    "trailing-slash": "a/",
    "double-slash": "a//b",
}


@pytest.mark.parametrize("bad", list(BAD_PATHS.values()), ids=list(BAD_PATHS))
def test_unsafe_path_is_refused_before_anything_is_written(
    tmp_path: Path, layout: tuple[Path, Path], bad: str
) -> None:
    """A bad path anywhere in the manifest stops the restore before any write."""
    root, _ = layout
    before = tree(tmp_path / "box") - {"root"}
    archive = hostile_archive(
        tmp_path / "h.snap",
        [file_entry("aaa-first.txt", PAYLOAD), file_entry(bad, PAYLOAD)],
        [PAYLOAD],
    )
    with pytest.raises(UnsafePathError, match="refusing"):
        snapkit.restore(archive, into=root)
    assert tree(root) == set()
    _outside_untouched(tmp_path, before | {"root"})
    assert not (tmp_path / "escape").exists()
    assert not (tmp_path / "box" / "escape").exists()


def test_absolute_path_is_refused(tmp_path: Path, layout: tuple[Path, Path]) -> None:
    """An absolute path aimed at the sentinel folder writes nothing there."""
    root, outside = layout
    archive = hostile_archive(
        tmp_path / "h.snap", [file_entry(f"{outside}/abs", PAYLOAD)], [PAYLOAD]
    )
    with pytest.raises(UnsafePathError):
        snapkit.restore(archive, into=root)
    assert tree(outside) == set()
    assert tree(root) == set()


def test_symlink_entry_then_file_below_it(
    tmp_path: Path, layout: tuple[Path, Path]
) -> None:
    """``link -> outside`` then ``link/pwned``: refused, nothing written at all."""
    root, outside = layout
    archive = hostile_archive(
        tmp_path / "h.snap",
        [
            FileEntry("link", "symlink", 0o777, target=str(outside)),
            file_entry("link/pwned", PAYLOAD),
        ],
        [PAYLOAD],
    )
    with pytest.raises(UnsafePathError, match="link"):
        snapkit.restore(archive, into=root)
    assert tree(outside) == set()
    assert tree(root) == set()


def test_file_entry_then_file_below_it(
    tmp_path: Path, layout: tuple[Path, Path]
) -> None:
    """A file listed below another file is refused before writing either."""
    root, _ = layout
    archive = hostile_archive(
        tmp_path / "h.snap",
        [file_entry("a", PAYLOAD), file_entry("a/b", PAYLOAD)],
        [PAYLOAD],
    )
    with pytest.raises(UnsafePathError):
        snapkit.restore(archive, into=root)
    assert tree(root) == set()


def test_existing_symlinked_folder_inside_root_is_not_written_through(
    tmp_path: Path, layout: tuple[Path, Path]
) -> None:
    """A link already in the root, pointing out: refused, even with force."""
    root, outside = layout
    os.symlink(outside, root / "escape")
    archive = hostile_archive(
        tmp_path / "h.snap",
        [file_entry("aaa.txt", PAYLOAD), file_entry("escape/pwned", PAYLOAD)],
        [PAYLOAD],
    )
    for force in (False, True):
        with pytest.raises(UnsafePathError, match="symlink"):
            snapkit.restore(archive, into=root, force=force)
        assert tree(outside) == set()
        assert tree(root) == {"escape"}


def test_existing_symlink_as_the_file_itself_is_replaced_not_followed(
    tmp_path: Path, layout: tuple[Path, Path]
) -> None:
    """A link where a file goes is a conflict; with force the link is replaced."""
    root, outside = layout
    victim = outside / "victim.txt"
    victim.write_bytes(b"keep me\n")
    os.symlink(victim, root / "f.txt")
    archive = hostile_archive(
        tmp_path / "h.snap", [file_entry("f.txt", PAYLOAD)], [PAYLOAD]
    )
    with pytest.raises(OverwriteError):
        snapkit.restore(archive, into=root)
    assert (root / "f.txt").is_symlink()

    snapkit.restore(archive, into=root, force=True)
    assert victim.read_bytes() == b"keep me\n"
    assert not (root / "f.txt").is_symlink()
    assert (root / "f.txt").read_bytes() == PAYLOAD


def test_duplicate_paths_are_refused(tmp_path: Path, layout: tuple[Path, Path]) -> None:
    """The same path twice means a damaged manifest: nothing is written."""
    root, _ = layout
    other = b"second\n"
    archive = hostile_archive(
        tmp_path / "h.snap",
        [file_entry("a.txt", PAYLOAD), file_entry("a.txt", other)],
        [PAYLOAD, other],
    )
    with pytest.raises(UnsafePathError, match="twice"):
        snapkit.restore(archive, into=root)
    assert tree(root) == set()


def test_setuid_setgid_and_sticky_bits_are_dropped(
    tmp_path: Path, layout: tuple[Path, Path]
) -> None:
    """Only permission bits survive a restore."""
    root, _ = layout
    archive = hostile_archive(
        tmp_path / "h.snap",
        [
            file_entry("suid", PAYLOAD, 0o4755),
            file_entry("sgid", PAYLOAD, 0o2750),
            FileEntry("shared", "dir", 0o1777),
        ],
        [PAYLOAD],
    )
    snapkit.restore(archive, into=root)
    modes = {n: os.lstat(root / n).st_mode for n in ("suid", "sgid", "shared")}
    for mode in modes.values():
        assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX)
    assert stat.S_IMODE(modes["suid"]) == 0o755
    assert stat.S_IMODE(modes["sgid"]) == 0o750
    assert stat.S_IMODE(modes["shared"]) == 0o777


def test_device_kind_cannot_even_be_read(tmp_path: Path) -> None:
    """The manifest format knows only files, folders and links."""
    path = hostile_archive(
        tmp_path / "h.snap", [FileEntry("dev", "chardev", 0o666)], []
    )
    with pytest.raises(FormatError, match="kind"):
        snapkit.open(path)


# -- overwrites ----------------------------------------------------------------


@pytest.fixture
def captured(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    make_workspace(ws)
    archive = tmp_path / "ws.snap"
    snapkit.capture(files=ws, to=archive).close()
    return archive


def test_changed_file_is_not_overwritten_without_force(
    tmp_path: Path, captured: Path
) -> None:
    """All conflicts are found first: a missing file is not re-created either."""
    out = tmp_path / "out"
    snapkit.restore(captured, into=out)
    (out / "notes.txt").write_bytes(b"my edits\n")
    (out / "sub" / "data.bin").unlink()

    with pytest.raises(OverwriteError, match=r"notes\.txt") as info:
        snapkit.restore(captured, into=out)
    assert "Nothing was written" in str(info.value)
    assert (out / "notes.txt").read_bytes() == b"my edits\n"
    assert not (out / "sub" / "data.bin").exists()
    assert temp_leftovers(out) == []


def test_identical_files_are_left_alone(tmp_path: Path, captured: Path) -> None:
    """A second restore into the same folder writes nothing."""
    out = tmp_path / "out"
    first = snapkit.restore(captured, into=out)
    inode = os.stat(out / "notes.txt").st_ino
    second = snapkit.restore(captured, into=out)
    assert second.written == []
    assert sorted(second.unchanged) == sorted(first.written)
    assert os.stat(out / "notes.txt").st_ino == inode


def test_force_overwrites_changed_files(tmp_path: Path, captured: Path) -> None:
    out = tmp_path / "out"
    snapkit.restore(captured, into=out)
    (out / "notes.txt").write_bytes(b"my edits\n")
    result = snapkit.restore(captured, into=out, force=True)
    assert result.written == ["notes.txt"]
    assert (out / "notes.txt").read_bytes() == b"snapkit notes\n" * 300


# -- damage ---------------------------------------------------------------------


@pytest.mark.parametrize("content", ["compressible", "incompressible"])
def test_corrupt_blob_leaves_no_half_written_file(tmp_path: Path, content: str) -> None:
    """A flipped byte in a file's blob: IntegrityError, no file, no temp file."""
    data = b"line of text\n" * 4000 if content == "compressible" else os.urandom(5000)
    good = b"fine\n"
    path = hostile_archive(
        tmp_path / "h.snap",
        [file_entry("a-good.txt", good), file_entry("b-victim.bin", data)],
        [good, data],
    )
    with Archive(path) as archive:
        stored = archive.get_raw(ref(data)[0][0]).data
    raw = bytearray(path.read_bytes())
    at = raw.find(stored)
    assert at >= 0 and raw.find(stored, at + 1) == -1
    raw[at + len(stored) // 2] ^= 0x40
    path.write_bytes(bytes(raw))

    out = tmp_path / "out"
    with pytest.raises(IntegrityError):
        snapkit.restore(path, into=out)
    assert not (out / "b-victim.bin").exists()
    assert temp_leftovers(out) == []


def test_folder_entry_over_a_symlink_is_refused_even_with_force(
    tmp_path: Path, layout: tuple[Path, Path]
) -> None:
    """A ``dir`` entry where the root holds a link: nothing is chmod-ed through it."""
    root, outside = layout
    outside.chmod(0o700)
    os.symlink(outside, root / "d")
    archive = hostile_archive(
        tmp_path / "h.snap",
        [file_entry("aaa.txt", PAYLOAD), FileEntry("d", "dir", 0o777)],
        [PAYLOAD],
    )
    for force in (False, True):
        with pytest.raises(UnsafePathError, match="symlink"):
            snapkit.restore(archive, into=root, force=force)
        assert stat.S_IMODE(os.stat(outside).st_mode) == 0o700
        assert (root / "d").is_symlink()
        assert tree(root) == {"d"}


def test_file_in_the_way_of_a_folder_is_not_replaced(
    tmp_path: Path, layout: tuple[Path, Path]
) -> None:
    root, _ = layout
    (root / "d").write_bytes(b"mine\n")
    archive = hostile_archive(tmp_path / "h.snap", [FileEntry("d", "dir", 0o755)])
    for force in (False, True):
        with pytest.raises(OverwriteError, match="in the way of a folder"):
            snapkit.restore(archive, into=root, force=force)
        assert (root / "d").read_bytes() == b"mine\n"


LONG = "n" * 251 + ".txt"  # 255 bytes: the longest name a path component takes


def test_longest_file_names_restore(tmp_path: Path, layout: tuple[Path, Path]) -> None:
    """A 255-byte name leaves no room to derive a temporary name from it."""
    root, _ = layout
    other = b"other\n"
    archive = hostile_archive(
        tmp_path / "h.snap",
        [
            file_entry(LONG, PAYLOAD),
            file_entry(f"sub/{LONG}", PAYLOAD),
            FileEntry("l" * 255, "symlink", 0o777, target=LONG),
        ],
        [PAYLOAD],
    )
    result = snapkit.restore(archive, into=root)
    assert sorted(result.written) == sorted([LONG, f"sub/{LONG}", "l" * 255])
    assert (root / LONG).read_bytes() == PAYLOAD
    assert (root / "sub" / LONG).read_bytes() == PAYLOAD
    assert os.readlink(root / ("l" * 255)) == LONG
    assert temp_leftovers(root) == []

    (root / LONG).write_bytes(other)
    snapkit.restore(archive, into=root, force=True)
    assert (root / LONG).read_bytes() == PAYLOAD
    assert temp_leftovers(root) == []


def test_captured_workspace_with_the_longest_names_round_trips(
    tmp_path: Path,
) -> None:
    ws = tmp_path / "ws"
    (ws / ("d" * 255)).mkdir(parents=True)
    (ws / ("d" * 255) / LONG).write_bytes(b"deep\n")
    (ws / LONG).write_bytes(b"top\n")
    archive = tmp_path / "long.snap"
    snapkit.capture(files=ws, to=archive).close()

    out = tmp_path / "out"
    snapkit.restore(archive, into=out)
    assert (out / LONG).read_bytes() == b"top\n"
    assert (out / ("d" * 255) / LONG).read_bytes() == b"deep\n"
    assert temp_leftovers(out) == []


def test_mode_only_change_needs_force_and_is_a_chmod(
    tmp_path: Path, captured: Path
) -> None:
    """Same bytes, other mode: a conflict; forced, a chmod reported on its own."""
    out = tmp_path / "out"
    snapkit.restore(captured, into=out)
    script = out / "run.sh"
    script.chmod(0o700)
    inode = os.stat(script).st_ino

    with pytest.raises(OverwriteError, match=r"run\.sh \(mode 0700, snapshot 0755\)"):
        snapkit.restore(captured, into=out)
    assert stat.S_IMODE(os.stat(script).st_mode) == 0o700

    result = snapkit.restore(captured, into=out, force=True)
    assert result.mode_changed == ["run.sh"]
    assert result.written == []
    assert "run.sh" not in result.unchanged
    assert stat.S_IMODE(os.stat(script).st_mode) == 0o755
    assert os.stat(script).st_ino == inode
    assert temp_leftovers(out) == []


# -- the environment check ------------------------------------------------------


def test_missing_library_stops_a_restore_before_any_file_is_written(
    tmp_path: Path,
) -> None:
    path = needs_a_ghost(tmp_path, PAYLOAD)
    out = tmp_path / "out"
    with pytest.raises(EnvironmentMismatchError, match=GHOST):
        snapkit.restore(path, into=out)
    assert tree(out) == set()


def test_unknown_object_stops_a_restore_before_any_file_is_written(
    tmp_path: Path,
) -> None:
    path = needs_a_ghost(tmp_path, PAYLOAD)
    out = tmp_path / "out"
    with pytest.raises(NotFoundError, match="nope"):
        snapkit.restore(path, into=out, objects=["nope"], strict=False)
    assert tree(out) == set()


def test_files_only_restore_reports_the_environment_without_failing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = needs_a_ghost(tmp_path, PAYLOAD)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="snapkit"):
        result = snapkit.restore(path, into=out, objects=[])
    assert result.written == ["data.txt"]
    assert result.objects == {}
    assert result.environment is not None and not result.environment.ok
    assert GHOST in result.environment.render()
    assert any(GHOST in r.getMessage() for r in caplog.records)
