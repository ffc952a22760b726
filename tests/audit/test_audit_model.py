"""Audit on hand-made manifests: totals, findings, limits, config, JSON schema."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from snapkit.audit import audit, find_limits, parse_size
from snapkit.errors import BudgetExceededError, ConfigError, UsageError
from snapkit.workspace.manifest import (
    BlobRef,
    Distribution,
    FileEntry,
    Libraries,
    Manifest,
    ObjectEntry,
)
from tests.diff.test_schema import validate_documented

MB = 1_000_000
DOCS = Path(__file__).resolve().parents[2] / "docs"


def refs(tag: str, size: int, n: int = 1) -> list[BlobRef]:
    return [
        (hashlib.sha256(f"{tag}:{i}".encode()).hexdigest(), size // n) for i in range(n)
    ]


def manifest() -> Manifest:
    shared = refs("csv", 6 * MB, 3)
    return Manifest(
        name="lab",
        created="2026-01-01T00:00:00.000000Z",
        objects=[
            ObjectEntry(
                "X",
                "numpy.ndarray",
                refs("xh", 100),
                [refs("x", 200 * MB, 25)],
                stored_size=190 * MB,
                summary={"shape": [25_000_000]},
            ),
            ObjectEntry(
                "frame",
                "pandas.core.frame.DataFrame",
                refs("fh", 200),
                [shared],
                stored_size=2 * MB,
            ),
            ObjectEntry(
                "predict", "builtins.function", refs("fn", 3 * MB), stored_size=3 * MB
            ),
            ObjectEntry("small", "builtins.dict", refs("s", 50), stored_size=40),
        ],
        libraries=Libraries("3.11.7", distributions=[Distribution("numpy", "2.0")]),
        files=[
            FileEntry("data", "dir", 0o40755),
            FileEntry(
                "data/noise.bin",
                "file",
                0o100644,
                50 * MB,
                0,
                refs("noise", 50 * MB, 5),
                stored_size=50 * MB,
            ),
            FileEntry(
                "data/copy.bin",
                "file",
                0o100644,
                50 * MB,
                0,
                refs("noise", 50 * MB, 5),
                stored_size=50 * MB,
            ),
            FileEntry(
                "data/iris.csv", "file", 0o100644, 6 * MB, 0, shared, stored_size=2 * MB
            ),
            FileEntry(".env", "file", 0o100600, 20, 0, refs("env", 20), stored_size=20),
            FileEntry(
                "__pycache__/m.cpython-311.pyc",
                "file",
                0o100644,
                900,
                0,
                refs("pyc", 900),
                stored_size=500,
            ),
        ],
    )


def codes(report: Any) -> dict[str, list[tuple[str, ...]]]:
    out: dict[str, list[tuple[str, ...]]] = {}
    for f in report.findings:
        out.setdefault(f.code, []).append(f.items)
    return out


def test_totals_count_each_blob_once() -> None:
    """Raw counts every entry; stored counts each blob once; dedup is reported."""
    r = audit(manifest(), use_config=False)
    m = manifest()
    assert r.totals.raw == m.raw_size
    assert r.totals.dedup_saved == 50 * MB + 6 * MB  # the copy and the csv buffer
    assert r.totals.stored < 200 * MB + 50 * MB + 3 * MB + 2 * MB + 2 * MB
    assert not r.totals.stored_exact
    assert [o.name for o in r.objects] == ["X", "frame", "predict", "small"]
    assert r.files[0].name in ("data/copy.bin", "data/noise.bin")
    assert r.folders[0].name == "data/"
    assert r.objects[0].share == pytest.approx(200 * MB / m.raw_size, rel=1e-3)
    assert r.objects[0].why == "captured object"
    # A manifest does not say which ignore rules chose its files.
    assert r.files[0].why == "captured file (ignore rules not recorded in the snapshot)"


def test_findings_name_each_problem() -> None:
    """Secret, default-ignored, duplicates, incompressible, hidden reference."""
    found = codes(audit(manifest(), use_config=False))
    assert found["secret"] == [("file:.env",)]
    assert found["default-ignored"] == [("file:__pycache__/m.cpython-311.pyc",)]
    assert ("file:data/copy.bin", "file:data/noise.bin") in found["duplicate"]
    assert ("file:data/iris.csv", "object:frame[0]") in found["duplicate"]
    assert ("file:data/noise.bin",) in found["incompressible"]
    assert ("object:X",) not in found["incompressible"]  # 95 % is the line
    assert found["hidden-reference"] == [("object:predict",)]
    assert "purge-candidate" not in found


def test_budget_gate_names_rule_limit_actual_and_blame() -> None:
    """Each violated rule, its limit and actual value, and the largest items."""
    r = audit(
        manifest(), budget="100MB", max_file="10MiB", max_object="1GB", use_config=False
    )
    assert not r.ok
    rules = {v.rule: v for v in r.violations}
    assert set(rules) == {"budget", "max-file"}
    assert rules["budget"].limit == 100 * MB
    assert rules["budget"].actual == r.totals.stored
    assert rules["budget"].blame[0].name == "X"
    assert rules["max-file"].limit == 10 * 2**20
    assert {i.name for i in rules["max-file"].blame} == {
        "data/noise.bin",
        "data/copy.bin",
    }
    with pytest.raises(BudgetExceededError) as err:
        r.check()
    assert err.value.exit_code == 1
    assert "budget exceeded" in str(err.value) and "X (" in str(err.value)
    assert "BUDGET EXCEEDED" in r.render()

    fine = audit(manifest(), budget="1GB", use_config=False)
    assert fine.ok
    fine.check()
    assert "within budget" in fine.render()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("200MB", 200 * 10**6),
        ("1.5GiB", int(1.5 * 2**30)),
        ("500k", 500_000),
        ("500K", 500_000),
        ("12", 12),
        ("3 mib", 3 * 2**20),
        ("7B", 7),
        (42, 42),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    """Decimal units are powers of 1000, binary (…iB) powers of 1024."""
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "bad", ["lots", "10 parsecs", "-5MB", "", "1.2.3MB", "1.5", "0.5B"]
)
def test_parse_size_rejects_and_names_the_value(bad: str) -> None:
    """A bad size is a usage error that quotes it."""
    with pytest.raises(UsageError, match=re.escape(repr(bad))):
        parse_size(bad, "--budget")


def test_limits_come_from_pyproject_and_flags_override(tmp_path: Path) -> None:
    """[tool.snapkit] is found walking up; a flag replaces the file's value."""
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.snapkit]\nbudget = "100MB"\n'
        'max-file = "10MiB"\n'
    )
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    limits = find_limits(nested)
    assert (limits.budget, limits.max_file, limits.max_object) == (
        100 * MB,
        10 * 2**20,
        None,
    )
    assert limits.origin["budget"] == str(tmp_path / "pyproject.toml")

    (tmp_path / "pyproject.toml").write_text('[tool.snapkit]\nbudget = "huge"\n')
    with pytest.raises(ConfigError, match="huge"):
        find_limits(nested)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('max_object = "1k"', r"'max_object' \(did you mean 'max-object'\?\)"),
        ('budjet = "1MB"', r"unknown key\(s\) 'budjet'; the valid keys are budget"),
        ("budget = 1.5", r'budget .* is 1\.5, not a size; write "1\.5MB"'),
        ("budget = true", r"budget .* is True, not a size"),
        ('budget = "1.5"', r"'1\.5' is a fraction of a byte"),
        ("budget = [1]", r"budget .* is \[1\], not a size"),
    ],
)
def test_config_rejects_unknown_keys_and_non_sizes(
    tmp_path: Path, line: str, expected: str
) -> None:
    """A misspelt key or a bare 1.5 is an error naming the file, not ignored."""
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(f'[tool.snapkit]\nmax-file = "1MB"\n{line}\n')
    with pytest.raises(ConfigError, match=expected) as err:
        find_limits(tmp_path)
    assert str(pyproject) in str(err.value)
    assert err.value.exit_code == 2


def test_config_takes_whole_bytes_and_sizes(tmp_path: Path) -> None:
    """budget = 2000 is 2000 bytes; "1.5k" is 1500; each key spelt with "-"."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.snapkit]\nbudget = 2000\nmax-object = "1.5k"\nmax-file = "3B"\n'
    )
    limits = find_limits(tmp_path)
    assert (limits.budget, limits.max_object, limits.max_file) == (2000, 1500, 3)


def test_config_is_read_by_a_real_toml_parser(tmp_path: Path) -> None:
    """Quoted keys, comments, underscores in numbers and inline tables parse
    as TOML says, on every Python (tomllib, or tomli before 3.11)."""
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.snapkit]\n"budget" = 2_000  # bytes\n'
        "max-file = '1MB'\n[tool.other]\nmax-object = 1\n"
    )
    limits = find_limits(tmp_path)
    assert (limits.budget, limits.max_file, limits.max_object) == (
        2000,
        1_000_000,
        None,
    )


def test_cli_audit_with_a_misspelt_config_key_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate does not pass silently because its limit was never read."""
    from click.testing import CliRunner

    from snapkit.cli import main

    (tmp_path / "pyproject.toml").write_text('[tool.snapkit]\nmax_file = "1k"\n')
    (tmp_path / "big.bin").write_bytes(b"x" * 5000)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["audit", "."])
    assert result.exit_code == 2, result.output
    assert "did you mean 'max-file'?" in result.output
    assert "Traceback" not in result.output


def test_audit_reads_limits_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For an archive or manifest the search starts in the current folder."""
    (tmp_path / "pyproject.toml").write_text('[tool.snapkit]\nbudget = "1MB"\n')
    monkeypatch.chdir(tmp_path)
    r = audit(manifest())
    assert [v.rule for v in r.violations] == ["budget"]
    assert r.limits.origin["budget"].endswith("pyproject.toml")
    assert audit(manifest(), budget="10GB").ok


def test_baseline_shows_what_grew() -> None:
    """With a baseline, the total and each grown item with its delta."""
    before = manifest()
    after = Manifest(
        name="lab",
        created=before.created,
        objects=[
            *before.objects[1:],
            ObjectEntry(
                "X",
                "numpy.ndarray",
                refs("xh", 100),
                [refs("x2", 300 * MB, 25)],
                stored_size=290 * MB,
            ),
        ],
        libraries=before.libraries,
        files=before.files,
    )
    r = audit(after, baseline=before, use_config=False)
    assert r.growth[0].kind == "total" and r.growth[0].delta == 100 * MB
    assert (r.growth[1].kind, r.growth[1].name, r.growth[1].delta) == (
        "object",
        "X",
        100 * MB,
    )
    text = r.render()
    assert "since lab: the raw total, then what grew" in text
    assert re.search(r"total\s+raw\s+315\.0 MB\s+→\s+415\.0 MB\s+\+100\.0 MB", text)


def test_baseline_total_that_shrank_prints_a_minus_sign() -> None:
    """A smaller snapshot: the total row reads -897 B, never +-897 B."""
    before = manifest()
    small = before.objects[3]
    after = replace(
        before,
        objects=[
            *before.objects[:3],
            replace(small, pickle=refs("s2", 53), stored_size=10),
        ],
        files=[f for f in before.files if f.path != "__pycache__/m.cpython-311.pyc"],
    )
    r = audit(after, baseline=before, use_config=False)
    total = r.growth[0]
    # "small" grew by 3 bytes, the 900-byte .pyc is gone.
    assert (total.kind, total.delta) == ("total", 3 - 900)
    text = r.render()
    assert "+-" not in text
    row = next(line for line in text.splitlines() if line.lstrip().startswith("total"))
    assert row.rstrip().endswith("-897 B")
    assert r.growth[1].name == "small" and "+3 B" in text
    assert r.to_json()["growth"][0]["delta"] == -897

    same = audit(before, baseline=before, use_config=False)
    assert "±0 B" in same.render() and "(no object or file grew)" in same.render()


def test_top_limits_lists_and_rejects_zero() -> None:
    """--top bounds each list in the views; 0 is a usage error."""
    r = audit(manifest(), top=2, use_config=False)
    doc = r.to_json()
    assert len(doc["objects"]) == 2 and len(doc["files"]) == 2
    with pytest.raises(UsageError):
        audit(manifest(), top=0)


def documented_schema() -> dict[str, Any]:
    text = (DOCS / "audit-json.md").read_text().split("## JSON Schema", 1)[1]
    block = re.search(r"```json\n(.*?)```", text, re.S)
    assert block
    schema: dict[str, Any] = json.loads(block.group(1))
    return schema


def test_json_matches_documented_schema(tmp_path: Path) -> None:
    """Every document, with and without violations, baseline and entry point."""
    import jsonschema

    schema = documented_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    script = tmp_path / "svc.py"
    script.write_text("def serve(v):\n    return X[v]\n")
    for r in (
        audit(manifest(), use_config=False),
        audit(
            manifest(),
            budget="1MB",
            max_object="1k",
            max_file="1k",
            baseline=manifest(),
            entrypoint=f"{script}:serve",
            use_config=False,
        ),
    ):
        doc = json.loads(json.dumps(r.to_json()))
        jsonschema.validate(doc, schema)
        validate_documented(doc, "audit-json.md")
