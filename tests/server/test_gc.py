"""Server garbage collection against a real server on loopback."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from snapkit.cli import main
from snapkit.errors import ConflictError
from snapkit.remote.client import Client
from snapkit.server import EmbeddedServer
from snapkit.server.gc import collect_server_garbage, data_lock
from snapkit.server.metadata import Metadata
from snapkit.store.archive import Archive
from snapkit.store.local import LocalStore
from snapkit.store.repository import StoredBlob

from .conftest import Api, manifest_of, random_blobs

LATER = timedelta(hours=2)


def _parts(server: EmbeddedServer) -> tuple[Metadata, LocalStore]:
    """The running server's own metadata and pack store (same process)."""
    state = server._server.config.app.state
    store = state.storage._store
    assert isinstance(store, LocalStore)
    return state.meta, store


def _missing(api: Api, blobs: list[StoredBlob]) -> set[str]:
    answer = api.missing([b.id for b in blobs])
    assert answer.status_code == 200
    return set(answer.json()["missing"])


def test_unreferenced_blobs_older_than_grace_go_younger_stay(
    server: EmbeddedServer, api: dict[str, Api]
) -> None:
    """Alice's blob named by a snapshot stays; her unreferenced blob recorded
    before the grace period goes (ownership and bytes); one recorded within
    it stays. A dry run first changes nothing."""
    meta, store = _parts(server)
    alice = api["alice"]
    named, old, young = (random_blobs(1) for _ in range(3))
    assert alice.upload(named + old).status_code == 201
    assert alice.commit(manifest_of(named)).status_code == 201
    time.sleep(0.05)
    boundary = datetime.now(timezone.utc)
    time.sleep(0.05)
    assert alice.upload(young).status_code == 201
    everything = named + old + young

    dry = collect_server_garbage(
        meta,
        store,
        grace=timedelta(hours=1),
        now=boundary + timedelta(hours=1),
        dry_run=True,
    )
    assert dry.ownership_removed == 1 and dry.users["alice"]["blobs"] == 1
    assert dry.store is not None and dry.store.blobs_removed == 1
    assert _missing(alice, everything) == set()
    assert store.missing(b.id for b in everything) == set()

    report = collect_server_garbage(
        meta, store, grace=timedelta(hours=1), now=boundary + timedelta(hours=1)
    )
    assert report.ownership_removed == 1
    assert report.store is not None and report.store.blobs_removed == 1
    assert _missing(alice, everything) == {old[0].id}
    assert store.missing(b.id for b in everything) == {old[0].id}
    assert alice.http.get(f"/blobs/{named[0].id}").content == named[0].data
    assert store.verify() == []


def test_blob_shared_with_another_user_stays_while_they_reference_it(
    server: EmbeddedServer, api: dict[str, Api]
) -> None:
    """Alice and Bob both upload a blob; only Bob's snapshot names it. Alice
    loses her reference; the bytes stay for Bob until he drops his too."""
    meta, store = _parts(server)
    alice, bob = api["alice"], api["bob"]
    shared = random_blobs(1)
    assert alice.upload(shared).status_code == 201
    assert bob.upload(shared).status_code == 201
    bob_snap = bob.commit(manifest_of(shared))
    assert bob_snap.status_code == 201

    report = collect_server_garbage(meta, store, now=datetime.now(timezone.utc) + LATER)
    assert report.users == {"alice": {"blobs": 1, "bytes": shared[0].stored_size}}
    assert report.store is not None and report.store.blobs_removed == 0
    assert _missing(alice, shared) == {shared[0].id}
    assert bob.http.get(f"/blobs/{shared[0].id}").content == shared[0].data

    # Bob removes his snapshot: now nobody owns the blob and its bytes go.
    assert bob.http.delete(f"/snapshots/{bob_snap.json()['id']}").status_code == 200
    report = collect_server_garbage(meta, store, now=datetime.now(timezone.utc) + LATER)
    assert report.users == {"bob": {"blobs": 1, "bytes": shared[0].stored_size}}
    assert report.store is not None and report.store.blobs_removed == 1
    assert store.missing([shared[0].id]) == {shared[0].id}


def _archive_with_snapshot(path: Path, count: int = 6) -> tuple[str, list[str]]:
    blobs = random_blobs(count, size=20_000)
    with Archive(path, "w") as archive:
        for blob in blobs:
            archive.put_raw(blob)
        sid = archive.add_snapshot(manifest_of(blobs, name="pushed"))
    return sid, [b.id for b in blobs]


def test_push_racing_gc_gets_409_and_reuploads_exactly_the_lost_blobs(
    server: EmbeddedServer, tokens: dict[str, str], tmp_path: Path
) -> None:
    """Garbage collection runs after the push uploaded its blobs and before
    it commits: the commit answers 409 listing them, the client uploads
    exactly those again from the archive, and the snapshot commits whole."""
    meta, store = _parts(server)
    sid, ids = _archive_with_snapshot(tmp_path / "a.snap")
    client = Client(server.url, tokens["alice"], progress=False)
    collected: list[Any] = []

    def collect_once(sent: int, _bytes: int) -> None:
        if not collected:
            collected.append(
                collect_server_garbage(
                    meta, store, now=datetime.now(timezone.utc) + LATER
                )
            )

    client.on_batch = collect_once
    with client:
        (stats,) = client.push(tmp_path / "a.snap")
        assert stats.blobs_sent == len(ids)
        assert collected[0].ownership_removed == len(ids)
        assert collected[0].store.blobs_removed == len(ids)
        assert client.blobs_resent == len(ids)
        assert client.blobs_sent == 2 * len(ids)
        assert [s.id for s in client.snapshots()] == [sid]
        client.pull(sid, tmp_path / "back.snap")
    with Archive(tmp_path / "back.snap", "r") as back:
        assert back.verify() == []
        assert back.missing(ids) == set()

    # What is on disk, not only what the server process has open, is whole.
    server.stop()
    with LocalStore(server.config.packs, create=False) as packs:
        assert isinstance(packs, LocalStore)
        assert packs.missing(ids) == set()
        assert packs.verify() == []


def test_409_without_a_source_drops_the_ids_so_a_rerun_recovers(
    server: EmbeddedServer, tokens: dict[str, str], tmp_path: Path
) -> None:
    """Without a repository to re-read from, the client raises ConflictError
    and forgets the ids it had been told the server holds, so running the
    same copy again uploads exactly those."""
    from snapkit.store.copy import copy

    meta, store = _parts(server)
    sid, ids = _archive_with_snapshot(tmp_path / "a.snap", count=3)
    with (
        Archive(tmp_path / "a.snap", "r") as source,
        Client(server.url, tokens["alice"], progress=False) as client,
    ):
        assert isinstance(client, Client)
        client.on_batch = lambda *_: collect_server_garbage(
            meta, store, now=datetime.now(timezone.utc) + LATER
        )
        with pytest.raises(ConflictError, match="Run the same push"):
            copy(source, client, sid)
        assert not set(ids) & client._known
        client.on_batch = None
        again = copy(source, client, sid)
        assert again.blobs_sent == len(ids)
        assert [s.id for s in client.snapshots()] == [sid]


def test_cli_server_gc(server: EmbeddedServer, api: dict[str, Api]) -> None:
    """`snapkit server gc` drops what it should with --grace 0, reports JSON,
    and skips the pack step (with a note) while the data folder is locked."""
    alice = api["alice"]
    blobs = random_blobs(2)
    assert alice.upload(blobs).status_code == 201
    server.stop()
    data = server.config.data
    runner = CliRunner()
    time.sleep(0.01)

    with data_lock(data) as locked:
        assert locked
        busy = runner.invoke(
            main, ["server", "gc", "--data", str(data), "--grace", "0", "--dry-run"]
        )
    assert busy.exit_code == 0, busy.output
    assert "server is running" in busy.stderr

    done = runner.invoke(
        main, ["server", "gc", "--data", str(data), "--grace", "0", "--json"]
    )
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["ownership_removed"] == 2
    assert report["store"]["blobs_removed"] == 2

    bad = runner.invoke(main, ["server", "gc", "--data", str(data), "--grace", "x"])
    assert bad.exit_code == 2
    nowhere = runner.invoke(
        main, ["server", "gc", "--data", os.fspath(data / "nowhere")]
    )
    assert nowhere.exit_code == 4
