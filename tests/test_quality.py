"""The package stays typed and lint-clean: mypy strict and ruff, as tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_mypy_strict_passes_on_the_package() -> None:
    """`mypy` (strict, configured in pyproject.toml) finds no error in snapkit/."""
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_lint_passes() -> None:
    """`ruff check` finds nothing in the package, tests and benchmarks."""
    result = _run("ruff", "check", "snapkit", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_applied() -> None:
    """The package is formatted as `ruff format` would format it."""
    result = _run("ruff", "format", "--check", "snapkit")
    assert result.returncode == 0, result.stdout + result.stderr
