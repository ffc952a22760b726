"""Audit of a real workspace: a 200 MB array, 50 MB of noise, a copy, a .env."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import snapkit
from snapkit.audit import audit
from snapkit.cli import main

pytestmark = pytest.mark.slow
MB = 1_000_000


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    root = tmp_path_factory.mktemp("ws")
    (root / "data").mkdir()
    (root / "backup").mkdir()
    (root / "data" / "noise.bin").write_bytes(os.urandom(50 * MB))
    table = "".join(f"{i},{i * 0.37:.4f},label{i % 7}\n" for i in range(120_000))
    (root / "data" / "ref.csv").write_text(table)
    (root / "backup" / "ref.csv").write_text(table)
    (root / ".env").write_text("API_TOKEN=not-a-real-token\n")
    namespace = {
        "features": np.random.default_rng(0).random(25_000_000),
        "threshold": 0.5,
    }
    return namespace, root


def test_dry_run_audit_reports_top_items_and_findings(
    workspace: tuple[dict[str, Any], Path],
) -> None:
    """Not captured yet: the array and the noise lead; copy, noise, .env found."""
    namespace, root = workspace
    r = audit(namespace, files=root, budget="100MB", use_config=False)
    assert r.live
    assert r.objects[0].name == "features" and r.objects[0].raw_size > 200 * MB
    assert r.files[0].name == "data/noise.bin"
    found = {(f.code, f.items) for f in r.findings}
    assert ("duplicate", ("file:backup/ref.csv", "file:data/ref.csv")) in found
    assert ("incompressible", ("file:data/noise.bin",)) in found
    assert ("secret-left-out", ("file:.env",)) in found
    assert not r.ok
    budget = r.violations[0]
    assert budget.rule == "budget" and budget.actual > 100 * MB
    assert [i.name for i in budget.blame[:2]] == ["features", "data/noise.bin"]


def test_cli_budget_gate_exits_1_naming_the_items(
    workspace: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    """An archive over --budget 100MB: exit 1, the rule, limit, actual and blame."""
    namespace, root = workspace
    archive = tmp_path / "ws.snap"
    snapkit.capture(
        objects=namespace, files=root, allow_secrets=True, to=archive
    ).close()

    result = CliRunner().invoke(main, ["audit", str(archive), "--budget", "100MB"])
    assert result.exit_code == 1, result.output
    assert "budget exceeded" in result.output
    assert "limit 100.0 MB" in result.output
    assert "features" in result.output and "data/noise.bin" in result.output
    assert "[secret] .env looks like a secret and is IN the snapshot" in result.output

    ok = CliRunner().invoke(main, ["audit", str(archive), "--budget", "1GB", "--json"])
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.output)
    assert doc["ok"] and doc["totals"]["stored_exact"]
    assert doc["objects"][0]["name"] == "features"

    bad = CliRunner().invoke(main, ["audit", str(archive), "--budget", "lots"])
    assert bad.exit_code == 2 and "'lots'" in bad.output
