"""The environment check before unpickling, on manifests edited after capture.

Each test captures for real, then writes the same blobs under a manifest whose
libraries say something else, as a snapshot from another machine would.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
from pathlib import Path

import pytest
from capture_fixtures import copy_with_manifest, isolated_cache, only_snapshot

import snapkit
from snapkit.errors import EnvironmentMismatchError
from snapkit.workspace.manifest import Distribution, Manifest

__all__ = ["isolated_cache"]

GHOST = "snapkit-test-ghost-distribution"


def _edited(tmp_path: Path, **changes: object) -> Path:
    """Capture one object, then rewrite its manifest's libraries with ``changes``."""
    original = tmp_path / "original.snap"
    snapkit.capture({"answer": {"value": 42}}, to=original).close()
    manifest = only_snapshot(original)
    libraries = dataclasses.replace(manifest.libraries, **changes)  # type: ignore[arg-type]
    edited: Manifest = dataclasses.replace(manifest, libraries=libraries)
    return copy_with_manifest(original, tmp_path / "edited.snap", edited)


def _with_ghost(tmp_path: Path) -> Path:
    original = tmp_path / "probe.snap"
    snapkit.capture({"x": 1}, to=original).close()
    libs = only_snapshot(original).libraries
    return _edited(
        tmp_path,
        distributions=[*libs.distributions, Distribution(GHOST, "9.9.9")],
        required=sorted([*libs.required, GHOST]),
    )


def test_missing_required_distribution_stops_the_load(tmp_path: Path) -> None:
    """The error shows the table row and the pip line that fixes it."""
    path = _with_ghost(tmp_path)
    with snapkit.open(path) as snap, pytest.raises(EnvironmentMismatchError) as info:
        snap.load("answer")
    message = str(info.value)
    assert GHOST in message
    assert f"pip install '{GHOST}==9.9.9'" in message
    assert "strict=False" in message


def test_missing_required_distribution_restore_refuses_too(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentMismatchError):
        snapkit.restore(_with_ghost(tmp_path))


def test_not_strict_loads_anyway_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _with_ghost(tmp_path)
    caplog.set_level(logging.WARNING, logger="snapkit")
    with snapkit.open(path) as snap:
        assert snap.load("answer", strict=False) == {"value": 42}
    assert any(GHOST in r.getMessage() for r in caplog.records)
    result = snapkit.restore(path, strict=False)
    assert result.objects == {"answer": {"value": 42}}


def test_other_python_minor_version_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A different minor version is a warning row; the object still loads."""
    major, minor, _ = platform.python_version_tuple()
    recorded = f"{major}.{int(minor) + 1}.0"
    path = _edited(tmp_path, python_version=recorded)
    caplog.set_level(logging.WARNING, logger="snapkit")
    with snapkit.open(path) as snap:
        report = snap.check_environment()
        rows = [r for r in report.rows if r.kind == "python"]
        assert [(r.name, r.recorded, r.severity) for r in rows] == [
            ("python", recorded, "warning")
        ]
        assert report.ok
        assert recorded in report.render()
        assert snap.load("answer") == {"value": 42}
    assert any(recorded in r.getMessage() for r in caplog.records)


def test_same_python_patch_difference_is_not_reported(tmp_path: Path) -> None:
    major, minor, _ = platform.python_version_tuple()
    path = _edited(tmp_path, python_version=f"{major}.{minor}.9999")
    with snapkit.open(path) as snap:
        assert not [r for r in snap.check_environment().rows if r.kind == "python"]


def test_other_version_of_a_required_distribution_is_a_warning(
    tmp_path: Path,
) -> None:
    original = tmp_path / "probe.snap"
    snapkit.capture({"x": 1}, to=original).close()
    libs = only_snapshot(original).libraries
    dists = [
        Distribution(d.name, "0.0.1") if d.name == "cloudpickle" else d
        for d in libs.distributions
    ]
    path = _edited(
        tmp_path,
        distributions=dists,
        required=sorted({*libs.required, "cloudpickle"}),
    )
    with snapkit.open(path) as snap:
        report = snap.check_environment()
        assert report.ok
        (row,) = [r for r in report.rows if r.name == "cloudpickle"]
        assert (row.kind, row.recorded) == ("version", "0.0.1")
        assert "cloudpickle==0.0.1" in report.pip_line()
