"""`snapkit audit` and `snapkit create --for` on the command line, in process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from disk_limits import snapkit_with_file_limit

import snapkit
from snapkit.audit import audit
from snapkit.audit.html import write_html
from snapkit.cli import main
from snapkit.errors import UsageError
from tests.diff.test_schema import validate_documented

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "iris"


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def iris(tmp_path: Path) -> Path:
    root = tmp_path / "iris"
    shutil.copytree(FIXTURE, root)
    return root


# -- --html --------------------------------------------------------------------


def test_html_into_a_missing_folder_is_a_usage_error(
    iris: Path, tmp_path: Path
) -> None:
    """Exit 2 up front, naming the path and what to do; no traceback, no file."""
    target = tmp_path / "nodir" / "r.html"
    result = run("audit", iris, "--html", target)
    assert result.exit_code == 2, result.output
    assert str(target) in result.output and "does not exist" in result.output
    assert "mkdir" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "nodir").exists()
    # Checked before the dry run: nothing of the report was printed.
    assert "audit of" not in result.output

    folder = run("audit", iris, "--html", tmp_path)
    assert folder.exit_code == 2 and "is a directory" in folder.output


def test_html_write_failure_names_the_path_and_leaves_no_temp(tmp_path: Path) -> None:
    """An OSError while writing becomes a UsageError; the temp file is removed."""
    from .test_audit_model import manifest

    report = audit(manifest(), use_config=False)
    out = tmp_path / "out"
    out.mkdir()
    # The temp file fits, the final name is over NAME_MAX: the rename fails.
    too_long = out / ("r" * 300 + ".html")
    with pytest.raises(UsageError, match="cannot write the HTML report") as err:
        write_html(report, too_long)
    assert isinstance(err.value.__cause__, OSError)
    assert list(out.iterdir()) == []

    write_html(report, out / "r.html")
    assert [p.name for p in out.iterdir()] == ["r.html"]


# -- --run / --keep --------------------------------------------------------------


def test_audit_dir_with_run_marks_purge_candidates(iris: Path) -> None:
    """`audit DIR --run train.py --keep ... --for train.py:score` dry-runs objects."""
    result = CliRunner().invoke(
        main,
        [
            "audit",
            str(iris),
            "--run",
            str(iris / "train.py"),
            "--keep",
            "model,iris",
            "--keep",
            "scratch,score",
            "--for",
            f"{iris / 'train.py'}:score",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # what the script prints is not on stdout
    validate_documented(doc, "audit-json.md")
    assert doc["source"]["live"] is True
    assert {o["name"] for o in doc["objects"]} == {"model", "iris", "scratch", "score"}
    purge = {f["items"][0] for f in doc["findings"] if f["code"] == "purge-candidate"}
    assert purge == {"object:iris", "object:scratch"}
    why = {o["name"]: o["why"] for o in doc["objects"]}
    assert why == {
        "model": "used by score",
        "iris": "not used by score",
        "scratch": "not used by score",
        "score": "the entry point",
    }
    assert {"iris.csv", "train.py"} <= {f["name"] for f in doc["files"]}
    assert "training accuracy" in result.stderr


def test_run_needs_a_folder_and_keep_needs_run(iris: Path, tmp_path: Path) -> None:
    """Misuse is exit 2 with a message saying what to give instead."""
    archive = tmp_path / "iris.snap"
    snapkit.capture(files=iris, to=archive).close()

    keep = run("audit", iris, "--keep", "model")
    assert keep.exit_code == 2 and "--keep needs --run" in keep.output

    no_objects = run("audit", iris, "--for", f"{iris / 'train.py'}:score")
    assert no_objects.exit_code == 0
    assert "holds no objects, so --for marks none; add --run" in no_objects.stderr

    on_archive = run("audit", archive, "--run", iris / "train.py")
    assert on_archive.exit_code == 2
    assert "--run measures a workspace folder" in on_archive.output


# -- create --for ------------------------------------------------------------------


def test_create_for_captures_exactly_what_the_function_uses(
    iris: Path, tmp_path: Path
) -> None:
    """score reads model and FEATURES (and pd, a library): nothing else is kept."""
    out = tmp_path / "svc.snap"
    result = run(
        "create",
        iris,
        "--run",
        iris / "train.py",
        "--for",
        f"{iris / 'train.py'}:score",
        "-o",
        out,
        "-q",
    )
    assert result.exit_code == 0, result.output
    with snapkit.open(out) as snap:
        assert sorted(snap.objects) == ["FEATURES", "model", "score"]
        assert snap.load("FEATURES")[0] == "sepal_length"

    # Auditing the result for the same entry point finds nothing to purge.
    report = audit(out, entrypoint=f"{iris / 'train.py'}:score", use_config=False)
    assert [f for f in report.findings if f.code == "purge-candidate"] == []


@pytest.mark.parametrize(
    ("spec", "code", "message"),
    [
        ("train.py", 2, "is not SCRIPT:FUNCTION"),
        ("train.py:", 2, "is not SCRIPT:FUNCTION"),
        ("train.py:not-a-name", 2, "is not SCRIPT:FUNCTION"),
        ("nosuch.py:score", 4, "does not exist"),
        ("train.py:predict", 4, "no function 'predict'"),
    ],
)
def test_create_for_rejects_a_bad_entry_point_before_running(
    iris: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spec: str,
    code: int,
    message: str,
) -> None:
    """A bad --for fails with its exit code before the script runs at all."""
    ran = tmp_path / "ran"
    (iris / "side_effect.py").write_text(f"open({str(ran)!r}, 'w').close()\n")
    monkeypatch.chdir(iris)
    result = run("create", ".", "--run", "side_effect.py", "--for", spec, "--dry-run")
    assert result.exit_code == code, result.output
    assert message in result.output
    assert not ran.exists()


def test_html_on_a_disk_that_refuses_is_a_storage_error(tmp_path: Path) -> None:
    """The disk saying no is exit 9 (StorageError), one line, no temp file."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("a few bytes\n")
    out = tmp_path / "out"
    out.mkdir()
    child = snapkit_with_file_limit(
        4096, "audit", ws, "--html", out / "r.html", cache=tmp_path / "cache"
    )
    assert child.returncode == 9, child.stderr
    assert "writing the HTML report" in child.stderr
    assert "Traceback" not in child.stderr
    assert list(out.iterdir()) == []
