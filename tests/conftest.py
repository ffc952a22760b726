"""Fixtures shared by every test package.

The system tools some tests use as real peers (git, zstd, chromium) are
required, not optional: a missing one fails the test that needs it, with the
line that installs it, so a run never passes by skipping. ``.ci/run``
installs all of them.
"""

from __future__ import annotations

import shutil

import pytest


def require_tool(*names: str, package: str) -> str:
    """The path of the first of ``names`` on PATH; fail the test if none is."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        f"this test needs {names[0]!r} on PATH: apt-get install -y {package} "
        "(bash .ci/run installs it)",
        pytrace=False,
    )


@pytest.fixture
def git_tool() -> str:
    return require_tool("git", package="git")


@pytest.fixture
def zstd_tool() -> str:
    return require_tool("zstd", package="zstd")


@pytest.fixture
def chromium_tool() -> str:
    return require_tool("chromium", "chromium-browser", package="chromium")
