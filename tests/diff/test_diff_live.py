"""Diff and audit from Python: a namespace side, capture options, no leaked handles."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

import pytest

import snapkit
from snapkit.errors import ObjectError

from .test_schema import validate_documented


def open_fds() -> set[str]:
    """What this process has open, as ``/proc/self/fd`` names the targets."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        # The fd listdir itself used is closed by now.
        with contextlib.suppress(FileNotFoundError):
            out.add(f"{fd}:{os.readlink(f'/proc/self/fd/{fd}')}")
    return out


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """An archive of two objects and two files, and the namespace it came from."""
    root = tmp_path / "work"
    root.mkdir()
    (root / "data.csv").write_text("a,b\n1,2\n")
    (root / "notes.txt").write_text("first try\n")
    namespace: dict[str, Any] = {"threshold": 0.5, "labels": ["a", "b"]}
    archive = tmp_path / "a.snap"
    snapkit.capture(objects=namespace, files=root, to=archive).close()
    return archive, namespace


def test_namespace_side_without_files_compares_objects_only(
    saved: tuple[Path, dict[str, Any]],
) -> None:
    """The archive's files are not "removed": a namespace has none to compare."""
    archive, namespace = saved
    live = {**namespace, "threshold": 0.7}

    d = snapkit.diff(archive, live)

    assert not d.files_compared and d.files == ()
    assert d.objects_compared
    assert [(o.name, o.status) for o in d.objects] == [("threshold", "changed")]
    # Totals are over object blobs only: the archive's file bytes are not gone.
    assert d.totals.bytes_removed < 100
    doc = d.to_json()
    validate_documented(doc)
    assert doc["files_compared"] is False and doc["files"] == []
    assert "files: not compared" in d.render()
    assert "not compared (namespace without files)" in d.render(stat=True)


def test_namespace_side_with_files_compares_both(
    saved: tuple[Path, dict[str, Any]],
) -> None:
    """files= brings the folder in: an edited file shows beside the objects."""
    archive, namespace = saved
    root = archive.parent / "work"
    (root / "notes.txt").write_text("second try\n")

    d = snapkit.diff(archive, namespace, files=root)

    assert d.files_compared and d.objects_compared
    assert [(f.path, f.status) for f in d.files] == [("notes.txt", "modified")]
    assert d.objects == ()


def test_capture_options_reach_the_namespace_side(
    saved: tuple[Path, dict[str, Any]],
) -> None:
    """exclude= and on_unpicklable= go to the dry-run capture of globals()."""
    archive, namespace = saved
    live = {**namespace, "scratch": list(range(1000)), "lock": threading.Lock()}

    with pytest.raises(ObjectError, match="lock"):
        snapkit.diff(archive, live)

    d = snapkit.diff(archive, live, exclude=["scratch"], on_unpicklable="skip")
    assert d.objects == ()  # scratch left out, the lock skipped
    added = snapkit.diff(archive, live, on_unpicklable="skip")
    assert [(o.name, o.status) for o in added.objects] == [("scratch", "added")]


def test_diff_and_audit_close_the_archives_they_open(
    saved: tuple[Path, dict[str, Any]],
) -> None:
    """Three calls each, by path: no file descriptor is left open."""
    archive, _ = saved
    snapkit.diff(archive, archive)  # warm up imports and caches
    snapkit.audit(archive, use_config=False)
    before = open_fds()

    for _ in range(3):
        assert not snapkit.diff(archive, str(archive)).changed
        snapkit.audit(str(archive), baseline=archive, use_config=False)

    leaked = sorted(fd for fd in open_fds() - before if str(archive) in fd)
    assert leaked == []
    assert len(open_fds()) <= len(before)


def test_a_side_that_fails_closes_the_other(
    saved: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """If B does not resolve, A (already opened) is closed before the error."""
    archive, _ = saved
    before = open_fds()
    for _ in range(3):
        with pytest.raises(snapkit.errors.NotFoundError):
            snapkit.diff(archive, tmp_path / "missing.snap")
    assert not [fd for fd in open_fds() - before if str(archive) in fd]


def test_a_source_the_caller_holds_stays_open(
    saved: tuple[Path, dict[str, Any]],
) -> None:
    """A snapshot passed in is the caller's to close; diff leaves it usable."""
    archive, namespace = saved
    with snapkit.open(archive) as snap:
        assert not snapkit.diff(snap, snap).changed
        snapkit.audit(snap, use_config=False)
        assert snap.load("threshold") == namespace["threshold"]
