"""Tests for snapkit.workspace.libraries: record, check, requirements."""

from __future__ import annotations

import importlib.metadata as metadata
import json
import logging
import platform
from pathlib import Path

import numpy as np
import pytest

import snapkit
from snapkit.errors import EnvironmentMismatchError
from snapkit.workspace import libraries
from snapkit.workspace.libraries import (
    EnvRow,
    check_environment,
    collect,
    installed,
    normalize,
    requirements_txt,
)
from snapkit.workspace.manifest import Distribution, Libraries
from snapkit.workspace.objects import pickle_object

MISSING = "surely-not-installed-dist"


def _other_minor() -> str:
    major, minor, _ = platform.python_version_tuple()
    return f"{major}.{int(minor) + 1}.0"


# -- collect -------------------------------------------------------------------


def test_collect_marks_numpy_required_for_an_array() -> None:
    """The distribution behind a pickled array's globals is required."""
    pickled = pickle_object("a", np.arange(3))
    lib = collect(pickled.imports, session_modules=[])
    assert lib.required == ["numpy"]
    assert lib.version_of("numpy") == np.__version__
    assert lib.session_modules == []


def test_collect_records_the_interpreter() -> None:
    """Python, platform, cloudpickle and snapkit versions are recorded."""
    lib = collect([], session_modules=[])
    assert lib.python_version == platform.python_version()
    assert lib.implementation == platform.python_implementation()
    assert lib.platform == platform.platform()
    assert lib.machine == platform.machine()
    assert lib.cloudpickle_version == metadata.version("cloudpickle")
    assert lib.snapkit_version == snapkit.__version__
    assert lib.required == []


def test_collect_lists_distributions_normalised_sorted_unique() -> None:
    """Distributions appear once each, by PEP 503 name, in order."""
    names = [d.name for d in collect([], session_modules=[]).distributions]
    assert names == sorted(set(names))
    assert all(n == normalize(n) for n in names)
    assert {"numpy", "cloudpickle"} <= set(names)


def test_collect_by_value_function_requires_cloudpickle() -> None:
    """cloudpickle is required once something travels by value."""
    assert (
        "cloudpickle"
        not in collect(pickle_object("a", [1]).imports, session_modules=[]).required
    )
    lam = pickle_object("f", lambda v: np.sum(v))
    lib = collect(lam.imports, session_modules=[])
    assert {"cloudpickle", "numpy"} <= set(lib.required)


def test_collect_default_session_leaves_out_snapkit_and_its_deps() -> None:
    """numpy, imported here, counts; snapkit's own imports do not."""
    import msgpack  # noqa: F401 - imported by snapkit anyway

    lib = collect([])
    assert "numpy" in lib.session_modules
    assert "numpy" in lib.required
    for own in ("snapkit", "msgpack", "cloudpickle"):
        assert own not in lib.session_modules
        assert own not in lib.required
    assert not any(m.startswith("_") for m in lib.session_modules)


def test_collect_explicit_session_modules() -> None:
    """Given session modules map to their distributions; stdlib maps to none."""
    lib = collect(["json:loads"], session_modules=["numpy.linalg", "os", "json"])
    assert lib.required == ["numpy"]
    assert lib.session_modules == ["json", "numpy", "os"]


def test_direct_url_of_vcs_and_editable_installs(tmp_path: Path) -> None:
    """PEP 610 records become a URL, with the VCS commit when there is one."""
    dist_info = tmp_path / "demo-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Name: Demo_Pkg\nVersion: 1.0\n")
    dist = metadata.PathDistribution(dist_info)
    assert libraries._direct_url(dist) is None

    vcs = {
        "url": "https://example.org/demo.git",
        "vcs_info": {"vcs": "git", "commit_id": "abc123"},
    }
    (dist_info / "direct_url.json").write_text(json.dumps(vcs))
    assert libraries._direct_url(dist) == "git+https://example.org/demo.git@abc123"

    local = {"url": "file:///home/me/demo", "dir_info": {"editable": True}}
    (dist_info / "direct_url.json").write_text(json.dumps(local))
    assert libraries._direct_url(dist) == "file:///home/me/demo"

    (dist_info / "direct_url.json").write_text("{not json")
    assert libraries._direct_url(dist) is None


# -- check_environment ---------------------------------------------------------


def _recorded(**kwargs: object) -> Libraries:
    base: dict[str, object] = {
        "python_version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "distributions": [Distribution(MISSING, "1.0")],
        "required": [MISSING],
    }
    base.update(kwargs)
    return Libraries(**base)  # type: ignore[arg-type]


def test_missing_required_distribution_raises_with_pip_line() -> None:
    """strict: the error holds the table, the pip line, and the way out."""
    with pytest.raises(EnvironmentMismatchError) as info:
        check_environment(_recorded())
    message = str(info.value)
    assert MISSING in message
    assert f"pip install '{MISSING}==1.0'" in message
    assert "strict=False" in message and "--no-strict" in message


def test_missing_required_distribution_not_strict_returns_report(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """strict=False: a report that is not ok, and a WARNING in the log."""
    with caplog.at_level(logging.WARNING, logger="snapkit.workspace.libraries"):
        report = check_environment(_recorded(), strict=False)
    assert not report.ok
    assert report.rows == [EnvRow("missing", MISSING, "1.0", "")]
    assert report.pip_line() == f"pip install '{MISSING}==1.0'"
    assert "missing" in report.render() and MISSING in report.render()
    assert any(MISSING in r.getMessage() for r in caplog.records)


def test_python_minor_difference_is_a_warning() -> None:
    """Another Python minor version is reported but does not fail."""
    report = check_environment(
        _recorded(python_version=_other_minor(), required=[], distributions=[])
    )
    assert report.ok
    assert [(r.kind, r.severity) for r in report.rows] == [("python", "warning")]
    assert report.rows[0].recorded == _other_minor()
    assert report.warnings == report.rows
    assert report.pip_line() == ""


def test_version_difference_is_a_warning_with_pin() -> None:
    """A required distribution at another version: warn, and say how to pin."""
    recorded = _recorded(
        distributions=[Distribution("numpy", "0.0.1")], required=["numpy"]
    )
    report = check_environment(recorded)
    assert report.ok
    assert report.rows == [EnvRow("version", "numpy", "0.0.1", np.__version__)]
    assert report.pip_line() == "pip install 'numpy==0.0.1'"


def test_unneeded_differences_are_information_only() -> None:
    """Distributions the objects do not need differ quietly."""
    recorded = _recorded(distributions=[Distribution(MISSING, "1.0")], required=[])
    report = check_environment(recorded)
    assert report.ok
    assert [r.severity for r in report.rows] == ["info"]
    assert "matches" in report.render()
    assert MISSING in report.render(include_info=True)


def test_same_environment_is_clean() -> None:
    """What collect records here checks out here."""
    report = check_environment(collect(pickle_object("a", np.arange(2)).imports))
    assert report.ok
    assert report.rows == []
    assert report.render() == "environment matches the snapshot"


def test_render_is_an_aligned_table() -> None:
    """Errors first; every column starts at the same offset on every line."""
    recorded = _recorded(
        python_version=_other_minor(),
        distributions=[Distribution(MISSING, "1.0"), Distribution("numpy", "0.1")],
        required=["numpy", MISSING],
    )
    lines = check_environment(recorded, strict=False).render().splitlines()
    assert lines[0].split() == ["kind", "name", "recorded", "running"]
    assert "missing" in lines[1]
    column = lines[0].index("name")
    assert all(line[column - 1] == " " for line in lines[1:])
    assert {
        line.index(word)
        for line, word in zip(lines[1:], ["missing", "python", "version"], strict=True)
    } == {lines[0].index("kind")}


# -- requirements ----------------------------------------------------------------


def test_requirements_txt() -> None:
    """Pins, direct references, local paths as comments, header with Python."""
    lib = Libraries(
        python_version="3.11.7",
        implementation="CPython",
        platform="Linux-x86_64",
        distributions=[
            Distribution("numpy", "1.26.4"),
            Distribution("pandas", "2.2.1"),
            Distribution("mylib", "0.1", "git+https://example.org/mylib.git@abc"),
            Distribution("localpkg", "0.2", "file:///home/me/localpkg"),
            Distribution("unused", "9.9"),
        ],
        required=["pandas", "numpy", "mylib", "localpkg", "Ghost_Pkg"],
    )
    text = requirements_txt(lib)
    lines = text.splitlines()
    assert lines[0].startswith("# Python 3.11.7")
    assert lines[1:] == [
        "ghost-pkg  # version not recorded",
        "localpkg==0.2  # installed from file:///home/me/localpkg",
        "mylib @ git+https://example.org/mylib.git@abc",
        "numpy==1.26.4",
        "pandas==2.2.1",
    ]
    assert text.endswith("\n")


def test_installed_matches_importlib_metadata() -> None:
    """installed() agrees with importlib.metadata on versions."""
    found = installed()
    assert found["numpy"].version == metadata.version("numpy")
    assert found["cloudpickle"].version == metadata.version("cloudpickle")


# -- the metadata cache ----------------------------------------------------------


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder and no memo of an earlier read in this process."""
    monkeypatch.setenv("SNAPKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(libraries, "_memo", None)
    return tmp_path / "cache"


def _fake_dist(where: Path, name: str, version: str, module: str) -> None:
    """A minimal installed distribution providing one top-level module."""
    info = where / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    )
    (info / "RECORD").write_text(f"{module}.py,,\n{info.name}/METADATA,,\n")
    (where / f"{module}.py").write_text("VALUE = 1\n")


def test_cached_metadata_matches_a_fresh_read(fresh_cache: Path) -> None:
    """The second collect reads the cache file and records the same thing."""
    first = collect(["numpy:ndarray"])
    files = list((fresh_cache / "libraries").iterdir())
    assert len(files) == 1
    libraries._memo = None  # as a new process would: only the file is left
    second = collect(["numpy:ndarray"])
    assert second == first
    assert "numpy" in second.required


def test_installing_a_distribution_is_seen_at_once(
    fresh_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new dist-info on sys.path changes the fingerprint: no stale answer."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    before = collect(["fresh_mod:VALUE"])
    assert "fresh-dist" not in {d.name for d in before.distributions}

    _fake_dist(site, "fresh_dist", "2.5", "fresh_mod")
    after = collect(["fresh_mod:VALUE"])
    assert Distribution("fresh-dist", "2.5") in after.distributions
    assert "fresh-dist" in after.required

    # An upgrade replaces the dist-info folder, so it is seen as well.
    for p in site.glob("fresh_dist-*.dist-info"):
        for f in p.iterdir():
            f.unlink()
        p.rmdir()
    _fake_dist(site, "fresh_dist", "2.6", "fresh_mod2")
    upgraded = collect([])
    assert Distribution("fresh-dist", "2.6") in upgraded.distributions


@pytest.mark.parametrize(
    "junk",
    [b"", b"\xc1 not msgpack", b"\x81\xa6format\x01"],
    ids=["empty", "garbage", "no-fingerprint"],
)
def test_unreadable_cache_is_rebuilt(fresh_cache: Path, junk: bytes) -> None:
    reference = collect([])
    (cache_file,) = (fresh_cache / "libraries").iterdir()
    cache_file.write_bytes(junk)
    libraries._memo = None
    assert collect([]) == reference
    assert cache_file.read_bytes() != junk
