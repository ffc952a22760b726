"""`snapkit demo`: the end-to-end tour runs and does what it says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from snapkit.demo import run_demo


def test_run_demo_tours_every_part(tmp_path: Path) -> None:
    """Push, list, second push uploads less, diff sees changes, restore predicts."""
    lines: list[str] = []
    result = run_demo(say=lines.append, keep=tmp_path / "tour")

    assert len(result.snapshot_ids) == 2
    assert result.snapshot_ids[0] != result.snapshot_ids[1]
    assert result.listed == 1
    assert 0 < result.second_upload < result.first_upload
    assert result.diff_changed
    assert result.audit_ok
    assert sorted(result.restored_files) == [
        ".snapignore",
        "README.md",
        "iris.csv",
        "train.py",
    ]
    assert result.prediction == ["virginica"]
    restored = tmp_path / "tour" / "restored" / "iris.csv"
    original = Path(__file__).resolve().parent.parent / "fixtures" / "iris" / "iris.csv"
    assert restored.read_bytes() == original.read_bytes()
    assert any("only" in line and "bytes uploaded" in line for line in lines)

    # Step 3 shows the snapshot: objects, what each pickle imports, libraries,
    # files, before anything is restored.
    shown = lines.index(next(line for line in lines if line.startswith("3. ")))
    listed = lines.index(next(line for line in lines if line.startswith("4. ")))
    step = lines[shown:listed]
    assert set(result.shown_imports) == {"iris", "model", "score"}
    assert any(i.startswith("sklearn.") for i in result.shown_imports["model"])
    assert any(i.startswith("pandas.") for i in result.shown_imports["iris"])
    for name, imports in result.shown_imports.items():
        assert any(line.strip().startswith(name) for line in step)
        assert f"      imports: {', '.join(imports)}" in "\n".join(step)
    assert any("libraries:" in line and "installed" in line for line in step)
    assert any(line.strip() == "files (4)" for line in step)
    assert any(line.endswith("  iris.csv") for line in step)
    assert not any("WARNING" in line for line in step)


def test_snapkit_demo_command_in_a_child_process(tmp_path: Path) -> None:
    """The console command exits 0, prints the steps, and leaves no temp folder."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "snapkit", "demo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    for step in (
        "1. workspace",
        "2. training",
        "3. what",
        "imports: ",
        "libraries: ",
        "4. your snapshots",
        "6. what changed",
        "7. restoring",
        "done",
    ):
        assert step in proc.stdout
    assert "Traceback" not in proc.stderr
    assert not any(p.name.startswith("snapkit-demo-") for p in tmp_path.iterdir())
