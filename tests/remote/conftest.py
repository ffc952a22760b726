"""A real server on loopback and clients of it, with no login config around."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from snapkit.remote.client import Client
from snapkit.server import EmbeddedServer


@pytest.fixture(autouse=True)
def no_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep tests away from the developer's real config and environment."""
    monkeypatch.setenv("SNAPKIT_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.delenv("SNAPKIT_URL", raising=False)
    monkeypatch.delenv("SNAPKIT_TOKEN", raising=False)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(tmp_path / "server") as running:
        yield running


@pytest.fixture
def token(server: EmbeddedServer) -> str:
    return server.add_user("alice")


@pytest.fixture
def client(server: EmbeddedServer, token: str) -> Iterator[Client]:
    with Client(server.url, token, progress=False, retries=0) as alice:
        yield alice
