"""Diff and audit of real captures of the iris fixture, through the CLI too."""

from __future__ import annotations

import json
import runpy
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import snapkit
from snapkit.audit import audit
from snapkit.cli import main
from snapkit.diff import diff
from snapkit.store.archive import Archive
from snapkit.workspace.manifest import Distribution

from .test_schema import validate_documented

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "iris"
KEEP = ["model", "iris", "scratch", "score"]


def train(root: Path) -> dict[str, Any]:
    return runpy.run_path(str(root / "train.py"), run_name="iris_train")


@pytest.fixture
def iris_snaps(tmp_path: Path) -> tuple[Path, Path, Path]:
    """a.snap; then the CSV edited, the model retrained, sklearn "upgraded"."""
    root = tmp_path / "iris"
    shutil.copytree(FIXTURE, root)
    out = tmp_path / "out"
    out.mkdir()
    a, b = out / "a.snap", out / "b.snap"
    snapkit.capture(namespace=train(root), include=KEEP, files=root, to=a).close()

    csv = root / "iris.csv"
    lines = csv.read_text().splitlines(keepends=True)
    csv.write_text("".join(lines[:-10]))
    snap = snapkit.capture(namespace=train(root), include=KEEP, files=root, to=b)
    m = snap.manifest
    snap.close()
    dists = [
        Distribution(d.name, "99.0") if d.name == "scikit-learn" else d
        for d in m.libraries.distributions
    ]
    with Archive(b, "a") as archive:
        archive.add_snapshot(
            replace(
                m,
                created="2099-01-01T00:00:00.000000Z",  # so it is #latest
                libraries=replace(m.libraries, distributions=dists),
            )
        )
    return root, a, b


def test_iris_diff_shows_csv_edit_retrain_and_upgrade(
    iris_snaps: tuple[Path, Path, Path],
) -> None:
    """Exactly: iris.csv modified, the objects built from it changed, sklearn up.

    ``score`` changes too: cloudpickle stores a script's function by value with
    the globals it reads, so its pickle holds the retrained model.
    """
    _, a, b = iris_snaps
    d = diff(a, f"{b}#latest")
    assert [(f.path, f.status) for f in d.files] == [("iris.csv", "modified")]
    assert d.files[0].size_delta < 0
    assert {(o.name, o.status) for o in d.objects} == {
        ("iris", "changed"),
        ("model", "changed"),
        ("scratch", "changed"),
        ("score", "changed"),
    }
    iris = next(o for o in d.objects if o.name == "iris")
    assert any(x.startswith("shape (150, 5) → (140, 5)") for x in iris.details)
    assert [(c.name, c.status, c.version_after) for c in d.libraries.distributions] == [
        ("scikit-learn", "upgraded", "99.0")
    ]

    result = CliRunner().invoke(main, ["diff", str(a), f"{b}#latest", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    validate_documented(doc)
    assert doc["schema"] == "snapkit.diff/1"
    assert doc["a"]["id"] and doc["b"]["id"] and doc["totals"]["upload_exact"]
    assert [f["path"] for f in doc["files"]] == ["iris.csv"]
    assert doc["libraries"]["distributions"][0]["name"] == "scikit-learn"

    text = CliRunner().invoke(main, ["diff", str(a), f"{b}#latest"])
    assert "~  iris.csv" in text.output and "scikit-learn" in text.output
    assert "shape (150, 5) → (140, 5)" in text.output

    same = CliRunner().invoke(main, ["diff", str(a), str(a), "--exit-code"])
    assert same.exit_code == 0 and "no differences" in same.output
    differ = CliRunner().invoke(main, ["diff", str(a), f"{b}#latest", "--exit-code"])
    assert differ.exit_code == 1


def test_diff_against_live_directory_and_patch(
    iris_snaps: tuple[Path, Path, Path],
) -> None:
    """`snapkit diff SNAP DIR` shows an edited and a new file; --patch shows text."""
    root, a, _ = iris_snaps
    (root / "train.py").write_text((root / "train.py").read_text() + "# tuned\n")
    (root / "notes.txt").write_text("try an SVM\n")
    result = CliRunner().invoke(main, ["diff", str(a), str(root), "--patch"])
    assert result.exit_code == 0, result.output
    assert "~  iris.csv" in result.output  # edited by the fixture after a.snap
    assert "~  train.py" in result.output
    assert "+  notes.txt" in result.output
    assert "+# tuned" in result.output
    assert "+try an SVM" in result.output
    assert "objects: not compared" in result.output

    d = diff(a, root)
    validate_documented(d.to_json())
    assert {f.path: f.status for f in d.files} == {
        "iris.csv": "modified",
        "train.py": "modified",
        "notes.txt": "added",
    }
    assert not d.objects_compared and d.libraries.required_added == ()


def test_audit_for_scoring_function_marks_unused_objects(
    iris_snaps: tuple[Path, Path, Path],
) -> None:
    """--for train.py:score keeps model (and score); iris and scratch are purgeable."""
    root, a, _ = iris_snaps
    r = audit(a, entrypoint=f"{root / 'train.py'}:score", use_config=False)
    purge = {f.items[0] for f in r.findings if f.code == "purge-candidate"}
    assert purge == {"object:iris", "object:scratch"}
    assert {"model", "FEATURES", "pd", "score"} <= set(r.used_globals)

    result = CliRunner().invoke(
        main, ["audit", str(a), "--for", f"{root / 'train.py'}:score", "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert {
        f["items"][0] for f in doc["findings"] if f["code"] == "purge-candidate"
    } == {"object:iris", "object:scratch"}
