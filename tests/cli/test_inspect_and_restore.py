"""show against a forged snapshot, restore's environment report, --run failures.

The forged snapshot is self-consistent (every hash matches): only reading
the pickle opcodes, not the manifest's record, tells what loading would do.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from capture_fixtures import (
    CREATED,
    GHOST,
    CountingRepository,
    needs_a_ghost,
    ref,
)

import snapkit
from snapkit.cli.show import describe
from snapkit.store.archive import Archive
from snapkit.workspace.manifest import Manifest, ObjectEntry
from tests.cli.conftest import Backend, write_tree

GETCWD = f"{os.getcwd.__module__}:getcwd"


class _CallsGetcwd:
    """Pickles as a call of os.getcwd: harmless, and plainly not an int."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return os.getcwd, ()


@pytest.fixture
def forged(tmp_path: Path) -> Path:
    """An archive whose object ``answer`` claims to import builtins:int."""
    stream = pickle.dumps(_CallsGetcwd(), protocol=5)
    entry = ObjectEntry("answer", "builtins.int", ref(stream), imports=["builtins:int"])
    path = tmp_path / "forged.snap"
    with Archive(path, "w") as archive:
        archive.put(stream)
        archive.add_snapshot(Manifest(name="forged", created=CREATED, objects=[entry]))
    return path


def test_show_reads_the_pickle_not_the_record(
    archive_backend: Backend, forged: Path
) -> None:
    result = archive_backend.run("show", forged)
    assert result.exit_code == 0, result.stderr
    assert f"imports: {GETCWD}" in result.stdout
    assert "imports: builtins:int" not in result.stdout
    (warning,) = [line for line in result.stdout.splitlines() if "WARNING" in line]
    assert "builtins:int" in warning and GETCWD in warning
    assert "do not load it" in warning

    doc = json.loads(archive_backend.run("show", forged, "--json").stdout)
    (obj,) = doc["objects"]
    assert obj["imports"] == [GETCWD]
    assert obj["recorded_imports"] == ["builtins:int"]
    assert obj["imports_match"] is False
    assert len(doc["warnings"]) == 1 and "answer" in doc["warnings"][0]


def test_show_of_an_honest_snapshot_has_no_warning(
    archive_backend: Backend, tmp_path: Path
) -> None:
    path = tmp_path / "honest.snap"
    snapkit.capture({"when": np.datetime64("2026-01-01")}, to=path).close()
    doc = json.loads(archive_backend.run("show", path, "--json").stdout)
    (obj,) = doc["objects"]
    assert obj["imports_match"] is True
    assert obj["imports"] == obj["recorded_imports"] != []
    assert doc["warnings"] == []


def test_describe_reads_pickle_streams_but_no_buffers(tmp_path: Path) -> None:
    path = tmp_path / "array.snap"
    snapkit.capture({"big": np.arange(300_000.0)}, to=path).close()
    with Archive(path) as archive:
        counting = CountingRepository(archive)
        snap = snapkit.open(counting)
        (entry,) = snap.manifest.objects
        assert entry.buffers
        describe(snap)
    assert set(counting.reads) == {bid for bid, _ in entry.pickle}


def test_load_logs_a_warning_when_the_pickle_differs_from_the_record(
    forged: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="snapkit"), snapkit.open(forged) as snap:
        assert snap.load("answer", strict=False) == os.getcwd()
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert GETCWD in warning.getMessage()
    assert "builtins:int" in warning.getMessage()

    honest = tmp_path / "honest.snap"
    snapkit.capture({"n": 3}, to=honest).close()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="snapkit"), snapkit.open(honest) as snap:
        assert snap.load("n") == 3
    loading = [r for r in caplog.records if "loading object n" in r.getMessage()]
    assert [r.levelno for r in loading] == [logging.INFO]


def test_show_and_load_report_a_forged_record_in_the_same_words(
    forged: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One check (Snapshot.checked_imports) behind both show and load."""
    with snapkit.open(forged) as snap:
        (shown,) = describe(snap)["objects"]
        assert snap.checked_imports("answer") == ([GETCWD], shown["warning"])
        with caplog.at_level(logging.WARNING, logger="snapkit"):
            snap.load("answer", strict=False)
    (logged,) = [r.getMessage() for r in caplog.records]
    assert shown["warning"] and logged.endswith(shown["warning"])

    honest = tmp_path / "honest.snap"
    snapkit.capture({"n": 3}, to=honest).close()
    with snapkit.open(honest) as snap:
        assert snap.checked_imports("n") == (snap.entry("n").imports, None)


def test_show_of_a_folder_that_is_not_a_store(
    archive_backend: Backend, tmp_path: Path
) -> None:
    (tmp_path / "iris").mkdir()
    result = archive_backend.run("show", tmp_path / "iris")
    assert result.exit_code == 2
    assert "not a snapkit store" in result.stderr
    assert "snapkit create" in result.stderr and "snapkit diff" in result.stderr
    assert "does not exist" not in result.stderr


# -- restore: the environment is reported, never fatal ----------------------------


def test_restore_with_a_missing_library_restores_and_warns_once(
    archive_backend: Backend, tmp_path: Path
) -> None:
    path = needs_a_ghost(tmp_path, b"kept\n")
    out = tmp_path / "out"
    result = archive_backend.run("restore", path, "--into", out)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("restored 1 files into")
    assert (out / "data.txt").read_text() == "kept\n"
    rows = [line for line in result.stderr.splitlines() if "missing" in line]
    assert len(rows) == 1 and GHOST in rows[0]
    assert f"pip install '{GHOST}==9.9'" in result.stderr
    assert "--no-strict" not in result.stderr


def test_restore_json_carries_the_environment(
    archive_backend: Backend, tmp_path: Path
) -> None:
    path = needs_a_ghost(tmp_path, b"kept\n")
    result = archive_backend.run("restore", path, "--into", tmp_path / "o", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["written"] == ["data.txt"]
    assert doc["environment_ok"] is False
    assert [r["name"] for r in doc["environment"] if r["kind"] == "missing"] == [GHOST]
    assert GHOST in doc["pip_install"]


def test_restore_reports_a_mode_only_change(
    archive_backend: Backend, tmp_path: Path
) -> None:
    ws = write_tree(tmp_path / "ws", {"run.sh": "echo hi\n"})
    (ws / "run.sh").chmod(0o755)
    source = archive_backend.create(ws)
    out = tmp_path / "out"
    assert archive_backend.run("restore", source, "--into", out).exit_code == 0
    (out / "run.sh").chmod(0o644)

    refused = archive_backend.run("restore", source, "--into", out)
    assert refused.exit_code == 7
    assert "run.sh (mode 0644, snapshot 0755)" in refused.stderr

    forced = archive_backend.run("restore", source, "--into", out, "--force", "--json")
    doc = json.loads(forced.stdout)
    assert (doc["written"], doc["mode_changed"]) == ([], ["run.sh"])
    assert (out / "run.sh").stat().st_mode & 0o777 == 0o755


# -- create --run: the script's own errors ------------------------------------------


def test_run_script_that_raises_is_one_line_naming_it(tmp_path: Path) -> None:
    """A child process, as a shell or CI sees it: exit 6, no traceback."""
    script = tmp_path / "bad.py"
    script.write_text(
        "weights = [1, 2]\n\ndef fit():\n    raise ValueError('no\\nrows')\n\nfit()\n"
    )
    env = {**os.environ, "SNAPKIT_CACHE_DIR": str(tmp_path / "cache")}
    out = tmp_path / "x.snap"
    argv = ["create", "--no-files", "--run", str(script), "-o", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "snapkit", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 6, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("snapkit: error: --run ")
    assert str(script) in line
    assert "line 4 (raise ValueError('no\\nrows'))" in line
    assert "ValueError: no rows" in line
    assert "Traceback" not in proc.stderr and "a bug" not in proc.stderr
    assert not out.exists()


def test_run_script_with_a_syntax_error(
    archive_backend: Backend, tmp_path: Path
) -> None:
    script = tmp_path / "broken.py"
    script.write_text("x = 1\ny = (\n")
    result = archive_backend.run(
        "create", "--no-files", "--run", script, "-o", tmp_path / "x.snap"
    )
    assert result.exit_code == 6
    assert "line 2" in result.stderr and "SyntaxError" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unpicklable_global_suggests_the_cli_flag(
    archive_backend: Backend, tmp_path: Path
) -> None:
    script = tmp_path / "lock.py"
    script.write_text("import threading\nlock = threading.Lock()\n")
    result = archive_backend.run(
        "create", "--no-files", "--run", script, "-o", tmp_path / "x.snap"
    )
    assert result.exit_code == 6
    assert "--skip-unpicklable" in result.stderr
    assert "--exclude-object lock" in result.stderr
