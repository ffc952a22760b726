"""Owner only, down to the bytes: each user is served the form they uploaded."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

from server.conftest import Api, manifest_of
from snapkit.remote import iter_records
from snapkit.server import EmbeddedServer
from snapkit.server.gc import collect_server_garbage
from snapkit.server.metadata import BlobForm, open_metadata
from snapkit.server.storage import FormFiles
from snapkit.store.archive import Archive
from snapkit.store.codec import Codec
from snapkit.store.local import LocalStore
from snapkit.store.repository import StoredBlob

CONTENT = b"iris,setosa,5.1,3.5\n" * 5000


def _zstd_and_raw() -> tuple[StoredBlob, StoredBlob]:
    packed = StoredBlob.from_bytes(CONTENT)
    assert packed.codec == Codec.ZSTD
    raw = StoredBlob(packed.id, Codec.RAW, len(CONTENT), CONTENT)
    return packed, raw


def _seen_by(api: Api, blob: StoredBlob) -> tuple[dict[str, int], str, bytes]:
    """What a user can learn of a blob: sizes, codec header, bytes."""
    sizes = api.missing([blob.id]).json()["sizes"]
    got = api.http.get(f"/blobs/{blob.id}")
    assert got.status_code == 200
    return sizes, got.headers["X-Snapkit-Codec"], got.content


def test_second_uploader_sees_only_their_own_form(
    api: dict[str, Api], server: EmbeddedServer, tmp_path: Path
) -> None:
    """Alice uploads X compressed, then Bob uploads X raw: Bob's size, codec,
    bytes, batch download and archive all come from his raw upload, and
    Alice's from her compressed one."""
    packed, raw = _zstd_and_raw()
    assert api["alice"].upload([packed]).status_code == 201
    assert api["bob"].upload([raw]).status_code == 201

    assert _seen_by(api["bob"], raw) == ({raw.id: len(CONTENT)}, "0", CONTENT)
    assert _seen_by(api["alice"], packed) == (
        {packed.id: packed.stored_size},
        "1",
        packed.data,
    )
    batch = api["bob"].http.post("/blobs/fetch", json={"ids": [raw.id]})
    assert list(iter_records(batch.content)) == [raw]

    # The archive Bob downloads holds his form too.
    sid = api["bob"].commit(manifest_of([raw])).json()["id"]
    down = api["bob"].http.get(f"/snapshots/{sid}/archive")
    (tmp_path / "bob.snap").write_bytes(down.content)
    with Archive(tmp_path / "bob.snap") as archive:
        assert archive.get_raw(raw.id).codec == Codec.RAW
        assert archive.verify() == []

    # Both forms survive a restart.
    server.stop()
    with EmbeddedServer(server.config.data) as again:
        for name, blob in (("bob", raw), ("alice", packed)):
            token = again.add_user(name)
            fresh = Api(again.url, token)
            try:
                got = fresh.http.get(f"/blobs/{blob.id}")
            finally:
                fresh.http.close()
            assert got.content == blob.data


def test_same_form_is_stored_once(api: dict[str, Api], server: EmbeddedServer) -> None:
    """A second user uploading the very bytes stored already adds no copy."""
    packed, _ = _zstd_and_raw()
    assert api["alice"].upload([packed]).status_code == 201
    assert api["bob"].upload([packed]).status_code == 201
    assert _seen_by(api["bob"], packed)[2] == packed.data
    assert list(FormFiles(server.config.forms).entries()) == []


def test_gc_drops_a_form_nobody_records(
    api: dict[str, Api], server: EmbeddedServer
) -> None:
    """Bob's form file goes once his ownership is collected; Alice's copy in
    the packs stays, and she still gets her bytes."""
    packed, raw = _zstd_and_raw()
    assert api["alice"].upload([packed]).status_code == 201
    assert api["alice"].commit(manifest_of([packed])).status_code == 201
    assert api["bob"].upload([raw]).status_code == 201
    state = server._server.config.app.state
    forms = state.storage.forms
    assert len(list(forms.entries())) == 1

    later = datetime.now(timezone.utc) + timedelta(hours=2)
    dry = collect_server_garbage(
        state.meta, state.storage._store, forms=forms, now=later, dry_run=True
    )
    assert dry.forms_removed == 1 and len(list(forms.entries())) == 1
    report = collect_server_garbage(
        state.meta, state.storage._store, forms=forms, now=later
    )
    assert report.forms_removed == 1
    assert report.form_bytes_freed > len(CONTENT)
    assert list(forms.entries()) == []
    assert _seen_by(api["alice"], packed)[2] == packed.data
    assert api["bob"].http.get(f"/blobs/{raw.id}").status_code == 404


_VERSION_1 = """
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL);
CREATE TABLE blobs (user_id INTEGER NOT NULL, blob_id TEXT NOT NULL,
    stored_size INTEGER NOT NULL, recorded TEXT NOT NULL,
    PRIMARY KEY (user_id, blob_id)) WITHOUT ROWID;
CREATE TABLE snapshots (user_id INTEGER NOT NULL, id TEXT NOT NULL,
    name TEXT NOT NULL, created TEXT NOT NULL, tags TEXT NOT NULL,
    raw_size INTEGER NOT NULL, objects INTEGER NOT NULL, files INTEGER NOT NULL,
    committed TEXT NOT NULL, manifest BLOB NOT NULL, PRIMARY KEY (user_id, id));
PRAGMA user_version = 1;
"""


def test_version_1_database_is_upgraded(tmp_path: Path) -> None:
    """Rows from before forms were kept are served the pack copy, and old
    snapshots get the UTC time that `since` compares with."""
    packed, _ = _zstd_and_raw()
    with LocalStore(tmp_path / "packs") as store:
        store.put_raw(packed)
    manifest = manifest_of([packed], created="2026-12-03T23:49:00+01:00")
    db = sqlite3.connect(tmp_path / "metadata.sqlite3")
    db.executescript(_VERSION_1)
    db.execute("INSERT INTO users VALUES (1, 'alice', '2026-01-01T00:00:00Z')")
    db.execute(
        "INSERT INTO blobs VALUES (1, ?, ?, '2026-01-01T00:00:00Z')",
        (packed.id, packed.stored_size),
    )
    db.execute(
        "INSERT INTO snapshots VALUES (1, ?, 'old', ?, '[]', 1, 0, 1, 'x', ?)",
        (manifest.id, manifest.created, manifest.encode()),
    )
    db.commit()
    db.close()

    meta = open_metadata(tmp_path)
    try:
        forms = meta.owned_forms(1, [packed.id])
        assert forms == {packed.id: BlobForm(None, packed.stored_size, None)}
        found = meta.list_snapshots(1, since="2026-12-03T22:49:00.000000Z")
        assert [r.id for r in found] == [manifest.id]
        assert meta.list_snapshots(1, since="2026-12-03T22:49:00.000001Z") == []
    finally:
        meta.close()

    with EmbeddedServer(tmp_path) as running:
        token = running.add_user("alice")
        api = Api(running.url, token)
        try:
            got = api.http.get(f"/blobs/{packed.id}")
            archive = api.http.get(f"/snapshots/{manifest.id}/archive")
        finally:
            api.http.close()
    assert got.content == packed.data
    (tmp_path / "down.snap").write_bytes(archive.content)
    with Archive(tmp_path / "down.snap") as opened:
        assert opened.verify() == []
