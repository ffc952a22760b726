"""The client as a repository: push, pull, capture, restore and diff by id."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapkit import capture
from snapkit.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    IntegrityError,
    NotFoundError,
    RemoteError,
)
from snapkit.remote.client import Client
from snapkit.server import EmbeddedServer
from snapkit.store.archive import Archive
from snapkit.store.repository import StoredBlob
from snapkit.workspace.manifest import FileEntry, Manifest


def _workspace(root: Path, files: int = 5, size: int = 50_000) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (root / f"data{i}.bin").write_bytes(os.urandom(size))
    (root / "notes.txt").write_text("iris\n" * 100)
    return root


def test_push_then_pull_round_trip(tmp_path: Path, client: Client) -> None:
    """An archive pushed and pulled back holds the same snapshot and bytes."""
    ws = _workspace(tmp_path / "ws")
    snap = capture(
        objects={"model": {"k": 3}},
        files=ws,
        name="Iris Snapshot",
        to=tmp_path / "a.snap",
    )
    [stats] = client.push(tmp_path / "a.snap")
    assert stats.snapshot_id == snap.id
    assert stats.blobs_sent == stats.blobs_total > 0
    assert [s.id for s in client.list_snapshots()] == [snap.id]

    pulled = client.pull(snap.id[:8], tmp_path / "b.snap")
    assert pulled.blobs_sent == stats.blobs_total
    with Archive(tmp_path / "b.snap") as archive:
        assert archive.snapshot(snap.id).encode() == snap.manifest.encode()
        assert archive.verify() == []

    # Pushing again sends no blob, only the question and the commit.
    before = client.bytes_sent
    [again] = client.push(tmp_path / "a.snap")
    assert again.blobs_sent == 0
    assert client.bytes_sent - before < 4096


def test_capture_restore_and_diff_by_id(tmp_path: Path, client: Client) -> None:
    """create_snapshot captures straight to the server; restore reads it back."""
    ws = _workspace(tmp_path / "ws", files=2)
    first = client.create_snapshot(objects={"n": 1}, files=ws, name="one")
    (ws / "data0.bin").write_bytes(b"changed")
    second = client.create_snapshot(objects={"n": 2}, files=ws, name="two")

    namespace: dict[str, object] = {}
    client.restore(second.id[:10], into=tmp_path / "out", namespace=namespace)
    assert namespace["n"] == 2
    assert (tmp_path / "out" / "data0.bin").read_bytes() == b"changed"

    d = client.diff(first.id, second.id)
    assert d.to_json()["changed"] is True
    opened = client.get_snapshot(first.id[:6])
    assert opened.id == first.id
    assert client.delete_snapshot(first.id[:6]) == first.id
    assert [s.id for s in client.list_snapshots()] == [second.id]


def test_commit_without_blobs_is_conflict(client: Client) -> None:
    """add_snapshot of a manifest naming unknown blobs raises ConflictError."""
    blob = StoredBlob.from_bytes(os.urandom(100))
    manifest = Manifest(
        name="x",
        created="2026-01-01T00:00:00Z",
        files=[FileEntry("a", "file", 0o644, 100, 0, [(blob.id, 100)])],
    )
    with pytest.raises(ConflictError, match="not uploaded") as caught:
        client.add_snapshot(manifest)
    assert caught.value.missing == [blob.id]


def test_unknown_snapshot_is_not_found(client: Client) -> None:
    with pytest.raises(NotFoundError, match="no snapshot abcdef"):
        client.snapshot("abcdef")


def test_bad_token_says_to_log_in(server: EmbeddedServer) -> None:
    with (
        Client(server.url, "snk_bad", progress=False) as client,
        pytest.raises(AuthError, match="snapkit login"),
    ):
        client.list_snapshots()


def test_unreachable_server_is_remote_error(tmp_path: Path) -> None:
    with EmbeddedServer(tmp_path / "gone") as gone:
        url = gone.url
    with (
        Client(url, "snk_x", progress=False, retries=1) as client,
        pytest.raises(RemoteError, match="cannot reach"),
    ):
        client.list_snapshots()


def test_url_and_token_come_from_env_then_config(
    server: EmbeddedServer, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from snapkit.remote.config import save_config

    with pytest.raises(ConfigError, match="snapkit login"):
        Client()
    save_config(server.url, token)
    with Client(progress=False) as client:
        assert client.whoami() == "alice"
    monkeypatch.setenv("SNAPKIT_TOKEN", "snk_from_env")
    with Client(progress=False) as client, pytest.raises(AuthError):
        client.whoami()


def test_background_upload_failure_surfaces_and_commits_nothing(
    server: EmbeddedServer, token: str
) -> None:
    """A batch refused while the next one fills raises from the next call
    that waits for it; no snapshot appears, and nothing is half-committed."""
    good = [StoredBlob.from_bytes(os.urandom(40_000)) for _ in range(6)]
    forged = StoredBlob(good[0].id[::-1], good[1].codec, good[1].raw_size, good[1].data)
    with Client(server.url, token, progress=False, retries=0, batch_bytes=50_000) as c:
        c.put_raw(forged)
        # Queued, so its size is known here, but the server has not said so.
        assert c.stored_sizes([forged.id]) == {forged.id: forged.stored_size}
        with pytest.raises(IntegrityError, match="does not match its id"):
            for blob in good:
                c.put_raw(blob)
            c.flush()
        assert c.list_snapshots() == []
        assert c.missing([forged.id]) == {forged.id}


def test_a_blob_queued_twice_while_in_flight_is_sent_once(
    server: EmbeddedServer, token: str
) -> None:
    blobs = [StoredBlob.from_bytes(os.urandom(30_000)) for _ in range(8)]
    with Client(server.url, token, progress=False, batch_bytes=60_000) as c:
        for blob in blobs + blobs[::-1] + blobs:
            c.put_raw(blob)
        c.flush()
        assert c.blobs_sent == len(blobs)
        assert c.missing([b.id for b in blobs]) == set()


class _CountingClient(Client):
    """The real client, counting how blobs are asked for."""

    single = 0
    batches = 0

    def get_raw(self, blob_id: str) -> StoredBlob:
        self.single += 1
        return super().get_raw(blob_id)

    def _fetch(self, ids: list[str]) -> Iterator[StoredBlob]:
        self.batches += 1
        return super()._fetch(ids)


def test_reading_many_chunks_from_the_server_is_batched(
    server: EmbeddedServer, token: str
) -> None:
    """BlobReader asks the server for a chunk list in batches, never blob by
    blob, and a chunk listed twice is fetched once and given back twice."""
    from snapkit.store.chunker import BlobReader

    datas = [os.urandom(300_000) for _ in range(5)]
    with _CountingClient(server.url, token, progress=False) as c:
        blobs = [StoredBlob.from_bytes(d) for d in datas]
        for blob in blobs:
            c.put_raw(blob)
        c.flush()
        refs = [(b.id, len(d)) for b, d in zip(blobs, datas, strict=True)]
        refs += refs[:2]
        with BlobReader(c) as reader:
            got = reader.read(refs, "test")
        assert bytes(got) == b"".join([*datas, *datas[:2]])
        assert c.single == 0
        assert c.batches == 1


def test_a_queued_upload_does_not_see_the_caller_change_its_buffer(
    client: Client,
) -> None:
    """The client keeps blobs queued after put_raw returns, so BlobWriter must
    hand it copies of raw (incompressible) chunks, not views: a buffer the
    caller reuses right after write() must not change what is uploaded."""
    from snapkit.store.chunker import BlobReader, BlobWriter

    assert client.keeps_blob_data
    buffer = bytearray(os.urandom(3 * 1024 * 1024))
    original = bytes(buffer)
    with BlobWriter(client) as writer:
        refs = writer.write(buffer).refs
        buffer[:] = bytes(len(buffer))  # reused before the upload is flushed
        client.flush()
    with BlobReader(client) as reader:
        assert bytes(reader.read(refs)) == original
