"""The archive download is streamed as it is assembled: nothing on disk."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from server.conftest import Api, manifest_of, random_blobs
from snapkit.server import EmbeddedServer
from snapkit.server.app import UserRepository, _archive_stream
from snapkit.server.auth import User
from snapkit.server.metadata import BlobForm, Metadata, SnapshotRow, SQLiteMetadata
from snapkit.server.storage import BlobStorage, form_of
from snapkit.store.archive import Archive
from snapkit.store.codec import Codec
from snapkit.store.repository import SnapshotInfo, StoredBlob
from snapkit.workspace.manifest import Manifest

CREATED = "2026-01-01T00:00:00.000000Z"


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_archive_streams_and_leaves_nothing_behind(
    api: dict[str, Api], server: EmbeddedServer, tmp_path: Path
) -> None:
    """The first bytes arrive with no file written for them, a client that
    hangs up midway leaves nothing behind, and a whole download opens."""
    alice = api["alice"]
    blobs = random_blobs(40, size=256 * 1024)
    for start in range(0, len(blobs), 10):
        assert alice.upload(blobs[start : start + 10]).status_code == 201
    sid = alice.commit(manifest_of(blobs)).json()["id"]
    before = _files(server.config.data)

    with alice.http.stream("GET", f"/snapshots/{sid[:8]}/archive") as answer:
        assert answer.status_code == 200
        assert "content-length" not in answer.headers
        assert answer.headers["transfer-encoding"] == "chunked"
        assert f'filename="{sid[:12]}.snap"' in answer.headers["content-disposition"]
        first = next(answer.iter_bytes())
        assert first.startswith(b"SNAPKIT\x00")
        assert _files(server.config.data) == before
    # Hung up after the first piece: the server is fine and wrote nothing.
    assert alice.http.get("/health").status_code == 200
    assert _files(server.config.data) == before

    whole = alice.http.get(f"/snapshots/{sid}/archive")
    (tmp_path / "down.snap").write_bytes(whole.content)
    with Archive(tmp_path / "down.snap") as archive:
        assert [s.id for s in archive.snapshots()] == [sid]
        assert archive.verify() == []
    assert _files(server.config.data) == before


def test_downloads_left_by_an_older_server_are_swept(tmp_path: Path) -> None:
    """`DATA/tmp`, where archives used to be built, is removed at startup."""
    data = tmp_path / "data"
    (data / "tmp").mkdir(parents=True)
    (data / "tmp" / "download-0123.snap").write_bytes(b"half an archive")
    with EmbeddedServer(data):
        assert not (data / "tmp").exists()


class _CountingMetadata(SQLiteMetadata):
    """The real database, counting the queries that look up blob forms."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.calls: list[str] = []

    def owned_forms(self, user_id: int, ids: Sequence[str]) -> dict[str, BlobForm]:
        self.calls.append("owned_forms")
        return super().owned_forms(user_id, ids)

    def snapshot_forms(self, user_id: int, snapshot_id: str) -> dict[str, BlobForm]:
        self.calls.append("snapshot_forms")
        return super().snapshot_forms(user_id, snapshot_id)


def _commit(meta: Metadata, user_id: int, manifest: Manifest) -> str:
    data = manifest.encode()
    sid = hashlib.sha256(data).hexdigest()
    info = SnapshotInfo.of(manifest, sid)
    row = SnapshotRow(
        sid, info.name, info.created, [], info.raw_size, 0, info.files, CREATED
    )
    assert meta.add_snapshot(user_id, row, data, manifest.blob_ids()) == []
    return sid


def test_archive_looks_up_the_callers_forms_once(tmp_path: Path) -> None:
    """One query for the forms of all the snapshot's blobs, not one per blob,
    and each blob goes out in the caller's own form."""
    meta = _CountingMetadata(tmp_path / "meta.sqlite3")
    storage = BlobStorage(tmp_path / "packs", tmp_path / "forms")
    alice = User(meta.add_user("alice"), "alice")
    blobs = random_blobs(30, size=1024)
    try:
        meta.add_blobs(alice.id, storage.put_many(blobs))
        manifest = manifest_of(blobs)
        sid = _commit(meta, alice.id, manifest)
        meta.calls.clear()
        repo = UserRepository(meta, storage, alice)
        data = b"".join(_archive_stream(repo, sid, manifest.encode()))
    finally:
        storage.close()
        meta.close()
    assert meta.calls == ["snapshot_forms"]
    (tmp_path / "down.snap").write_bytes(data)
    with Archive(tmp_path / "down.snap") as archive:
        assert archive.verify() == []
        assert [archive.get_raw(b.id) for b in blobs] == blobs


def test_snapshot_forms_are_the_owners_own(tmp_path: Path) -> None:
    """Alice's and Bob's snapshots name one blob in two forms: each gets their
    own form, and nobody gets forms through another user's snapshot id."""
    meta = SQLiteMetadata(tmp_path / "meta.sqlite3")
    storage = BlobStorage(tmp_path / "packs", tmp_path / "forms")
    alice, bob = meta.add_user("alice"), meta.add_user("bob")
    packed = StoredBlob.from_bytes(b"setosa\n" * 2000)
    raw = StoredBlob(packed.id, Codec.RAW, packed.raw_size, b"setosa\n" * 2000)
    try:
        meta.add_blobs(alice, storage.put_many([packed]))
        meta.add_blobs(bob, storage.put_many([raw]))
        theirs = _commit(meta, alice, manifest_of([packed], name="a"))
        his = _commit(meta, bob, manifest_of([raw], name="b"))
        assert meta.snapshot_forms(alice, theirs) == {packed.id: form_of(packed)}
        assert meta.snapshot_forms(bob, his) == {raw.id: form_of(raw)}
        assert meta.snapshot_forms(bob, theirs) == {}
    finally:
        storage.close()
        meta.close()
