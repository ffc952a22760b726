"""Push and pull against a server whose body cap is below the client's batch
size and below one of the blobs: batches are split, big blobs go alone."""

from __future__ import annotations

import os
from pathlib import Path

from server.conftest import manifest_of

from snapkit.remote.client import Client
from snapkit.server import EmbeddedServer
from snapkit.store.archive import Archive
from snapkit.store.repository import StoredBlob


def test_push_and_pull_through_a_small_cap(tmp_path: Path) -> None:
    blobs = [StoredBlob.from_bytes(os.urandom(1024 * 1024))]
    blobs += [StoredBlob.from_bytes(os.urandom(20_000)) for _ in range(30)]
    with Archive(tmp_path / "a.snap", "w") as archive:
        for blob in blobs:
            archive.put_raw(blob)
        sid = archive.add_snapshot(manifest_of(blobs))

    with EmbeddedServer(tmp_path / "srv", max_body=256 * 1024) as small:
        token = small.add_user("carol")
        with Client(small.url, token, progress=False, retries=0) as client:
            [pushed] = client.push(tmp_path / "a.snap")
            assert pushed.blobs_sent == len(blobs)
            assert client.batch_bytes <= 128 * 1024
            pulled = client.pull(sid, tmp_path / "b.snap")
            assert pulled.blobs_sent == len(blobs)
    with Archive(tmp_path / "b.snap") as back:
        assert [s.id for s in back.snapshots()] == [sid]
        assert back.verify() == []
