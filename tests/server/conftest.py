"""A real snapkit server on loopback, and two users of it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from snapkit.remote import encode_records
from snapkit.server import EmbeddedServer
from snapkit.store.repository import StoredBlob
from snapkit.workspace.manifest import FileEntry, Manifest


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(tmp_path / "server") as running:
        yield running


@pytest.fixture
def tokens(server: EmbeddedServer) -> dict[str, str]:
    return {name: server.add_user(name) for name in ("alice", "bob")}


class Api:
    """An HTTP client acting as one user, with shortcuts for the blob protocol."""

    def __init__(self, url: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url + "/api/v1", headers=headers)

    def upload(self, blobs: list[StoredBlob]) -> httpx.Response:
        return self.http.post(
            "/blobs",
            content=encode_records(blobs),
            headers={"Content-Type": "application/octet-stream"},
        )

    def commit(self, manifest: Manifest) -> httpx.Response:
        return self.http.post(
            "/snapshots",
            content=manifest.encode(),
            headers={"Content-Type": "application/octet-stream"},
        )

    def missing(self, ids: list[str]) -> httpx.Response:
        return self.http.post("/blobs/missing", json={"ids": ids})


@pytest.fixture
def api(server: EmbeddedServer, tokens: dict[str, str]) -> Iterator[dict[str, Api]]:
    clients = {name: Api(server.url, token) for name, token in tokens.items()}
    clients["anonymous"] = Api(server.url, None)
    yield clients
    for client in clients.values():
        client.http.close()


def random_blobs(count: int, size: int = 4096) -> list[StoredBlob]:
    return [StoredBlob.from_bytes(os.urandom(size)) for _ in range(count)]


def manifest_of(
    blobs: list[StoredBlob],
    name: str = "test",
    tags: list[str] | None = None,
    created: str = "2026-01-01T00:00:00.000000Z",
) -> Manifest:
    """A snapshot whose files are the given blobs, one per file."""
    files = [
        FileEntry(f"f{i}.bin", "file", 0o644, b.raw_size, 0, [(b.id, b.raw_size)])
        for i, b in enumerate(blobs)
    ]
    return Manifest(name=name, created=created, tags=tags or [], files=files)
