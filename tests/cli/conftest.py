"""Two backends for the same CLI tests: an archive file and a real server.

A :class:`Backend` knows how to create a snapshot of a folder with the
command line (``-o X.snap`` or ``--push``) and which SOURCE string names it
afterwards (the archive path, or the server id or a prefix of it). The server
is a real :class:`~snapkit.server.EmbeddedServer` on loopback, one per test
module; each test gets a user of its own, so listings start empty.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from snapkit.cli import main
from snapkit.server import EmbeddedServer

_users = itertools.count()

#: Environment variables that would point a test at someone's real server.
_CLEARED = ("SNAPKIT_URL", "SNAPKIT_TOKEN", "SNAPKIT_SERVER_DATA")


@dataclass
class Backend:
    """Runs ``snapkit`` in process against one kind of repository."""

    kind: str
    home: Path
    env: dict[str, str | None] = field(default_factory=dict)
    _count: itertools.count[int] = field(default_factory=itertools.count)

    def run(self, *args: str | os.PathLike[str]) -> Result:
        """Invoke the CLI in process; stdout and stderr kept apart."""
        return CliRunner().invoke(
            main, [os.fspath(a) for a in args], env=self.env, catch_exceptions=False
        )

    def create(self, root: Path, *extra: str) -> str:
        """Capture ``root`` with ``snapkit create``; return the SOURCE naming it."""
        if self.kind == "archive":
            out = self.home / f"snap{next(self._count)}.snap"
            result = self.run("create", root, "-o", out, "--json", *extra)
        else:
            result = self.run("create", root, "--push", "--json", *extra)
        assert result.exit_code == 0, result.output + result.stderr
        snapshot_id = json.loads(result.stdout)["id"]
        return str(out) if self.kind == "archive" else snapshot_id

    def short(self, source: str) -> str:
        """The way a person would type SOURCE: an id prefix on the server."""
        return source[:10] if self.kind == "server" else source


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(tmp_path_factory.mktemp("server")) as running:
        yield running


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str | None]:
    """No login config, server or stat cache from the developer's environment."""
    env: dict[str, str | None] = dict.fromkeys(_CLEARED)
    env["SNAPKIT_CONFIG"] = str(tmp_path / "config.toml")
    env["SNAPKIT_CACHE_DIR"] = str(tmp_path / "cache")
    return env


@pytest.fixture
def user_env(
    server: EmbeddedServer, base_env: dict[str, str | None]
) -> dict[str, str | None]:
    """The environment of a fresh user of the module's server."""
    token = server.add_user(f"user{next(_users)}")
    return {**base_env, "SNAPKIT_URL": server.url, "SNAPKIT_TOKEN": token}


@pytest.fixture
def archive_backend(tmp_path: Path, base_env: dict[str, str | None]) -> Backend:
    home = tmp_path / "snaps"
    home.mkdir()
    return Backend("archive", home, base_env)


@pytest.fixture
def server_backend(tmp_path: Path, user_env: dict[str, str | None]) -> Backend:
    home = tmp_path / "snaps"
    home.mkdir()
    return Backend("server", home, user_env)


@pytest.fixture(params=["archive", "server"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each test using this runs once per backend, ids ``archive``/``server``."""
    chosen: Backend = request.getfixturevalue(f"{request.param}_backend")
    return chosen


def write_tree(root: Path, files: dict[str, bytes | str]) -> Path:
    """Create ``root`` with the given files (relative path -> content)."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        else:
            path.write_bytes(content)
    return root


def read_tree(root: Path, skip: Sequence[str] = ()) -> dict[str, bytes]:
    """Every regular file under ``root`` by relative path."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part in skip for part in p.parts)
    }
