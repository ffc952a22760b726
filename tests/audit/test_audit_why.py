"""Why each item is in: the rule that kept a file, the entry point that uses it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import snapkit
from snapkit.audit import audit

SCRIPT = """\
import json

weights = [0.1, 0.2, 0.3]
vocabulary = {"a": 0, "b": 1}
notes = "kept while exploring"


def score(tokens):
    return sum(weights[vocabulary[t]] for t in tokens)
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A folder whose .snapignore drops *.tmp but keeps notes.tmp, and logs/."""
    root = tmp_path / "ws"
    (root / "logs").mkdir(parents=True)
    (root / ".snapignore").write_text("*.tmp\n!notes.tmp\nlogs/\n")
    (root / "notes.tmp").write_text("keep me\n")
    (root / "scratch.tmp").write_text("drop me\n")
    (root / "data.csv").write_text("a,b\n1,2\n")
    (root / "logs" / "run.log").write_text("noise\n")
    (root / "logs" / "keep.log").write_text("the one that matters\n")
    (root / "svc.py").write_text(SCRIPT)
    return root


def whys(report: Any) -> dict[str, str]:
    return {i.name: i.why for i in (*report.objects, *report.files)}


def test_dry_run_names_the_negation_and_include_that_kept_a_file(
    workspace: Path,
) -> None:
    """A `!pattern` or an --include decided these; the rest matched no rule."""
    r = audit(workspace, file_include=["logs/keep.log"], use_config=False)
    got = whys(r)
    assert got["notes.tmp"] == "kept by .snapignore:2: !notes.tmp"
    assert got["logs/keep.log"] == "kept by --include logs/keep.log"
    assert got["data.csv"] == "not matched by any ignore rule"
    assert got[".snapignore"] == "not matched by any ignore rule"
    assert "scratch.tmp" not in got and "logs/run.log" not in got


def test_archive_says_its_rules_were_not_recorded(
    workspace: Path, tmp_path: Path
) -> None:
    """A manifest records files, not the rules that chose them: say so."""
    archive = tmp_path / "ws.snap"
    snapkit.capture(files=workspace, to=archive).close()
    got = whys(audit(archive, use_config=False))
    assert set(got.values()) == {
        "captured file (ignore rules not recorded in the snapshot)"
    }
    assert "notes.tmp" in got


def test_for_says_which_objects_the_function_uses(workspace: Path) -> None:
    """With --for: "used by score", "not used by score", and the entry point."""
    namespace: dict[str, Any] = {}
    exec(compile(SCRIPT, "svc.py", "exec"), namespace)
    del namespace["__builtins__"]
    r = audit(namespace, entrypoint=f"{workspace / 'svc.py'}:score", use_config=False)
    got = whys(r)
    assert got["weights"] == "used by score"
    assert got["vocabulary"] == "used by score"
    assert got["notes"] == "not used by score"
    assert got["score"] == "the entry point"
    purge = [f for f in r.findings if f.code == "purge-candidate"]
    assert [f.items for f in purge] == [("object:notes",)]
    assert "is not used by score" in purge[0].message

    # Without --for: picked from the namespace, or named by include=.
    assert whys(audit(namespace, use_config=False))["notes"] == "namespace variable"
    chosen = whys(audit(namespace, include=["weights"], use_config=False))
    assert chosen == {"weights": "selected by include list"}
