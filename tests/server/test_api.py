"""Auth, errors, OpenAPI, listing and the snapshot routes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from server.conftest import Api, manifest_of, random_blobs
from snapkit.server import EmbeddedServer
from snapkit.server.auth import authenticate, issue_token, parse_token
from snapkit.server.metadata import SQLiteMetadata, open_metadata
from snapkit.store.archive import Archive


@pytest.mark.parametrize(
    "header",
    [None, "Bearer snk_nope", "Bearer snk_AAAAAAAAAAAA_" + "A" * 43, "Basic abc"],
    ids=["none", "malformed", "unknown", "basic"],
)
def test_bad_token_is_401_problem(server: EmbeddedServer, header: str | None) -> None:
    """Every protected route answers 401 problem+json without a good token."""
    api = Api(server.url, None)
    headers = {"Authorization": header} if header else {}
    try:
        answer = api.http.get("/snapshots", headers=headers)
    finally:
        api.http.close()
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["www-authenticate"] == "Bearer"
    problem = answer.json()
    assert problem["code"] == "unauthorized"
    assert set(problem) >= {"type", "title", "status", "detail", "code"}


def test_health_openapi_and_docs_need_no_token(api: dict[str, Api]) -> None:
    http = api["anonymous"].http
    assert http.get("/health").json()["status"] == "ok"
    spec = http.get("../../openapi.json").json()
    assert "/api/v1/blobs/missing" in spec["paths"]
    assert "/api/v1/snapshots/{snapshot_id}/archive" in spec["paths"]
    assert http.get("../../docs").status_code == 200


def test_unknown_route_is_problem_json(api: dict[str, Api]) -> None:
    answer = api["alice"].http.get("/nothing-here")
    assert answer.status_code == 404
    assert answer.json()["code"] == "not_found"


def test_listing_filters_and_pages(api: dict[str, Api]) -> None:
    """Listing filters by name, tag and time, oldest first, one page at a time."""
    alice = api["alice"]
    for day in range(1, 6):
        m = manifest_of(
            [],
            name="even" if day % 2 == 0 else "odd",
            tags=["prod"] if day == 3 else [],
            created=f"2026-01-0{day}T00:00:00.000000Z",
        )
        assert alice.commit(m).status_code == 201

    def names(**params: object) -> list[str]:
        page = alice.http.get("/snapshots", params=params).json()
        return [s["created"][:10] for s in page["snapshots"]]

    assert names(name="even") == ["2026-01-02", "2026-01-04"]
    assert names(tag="prod") == ["2026-01-03"]
    assert names(since="2026-01-04") == ["2026-01-04", "2026-01-05"]

    seen, cursor = [], None
    while True:
        params: dict[str, object] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = alice.http.get("/snapshots", params=params).json()
        seen += [s["created"][:10] for s in page["snapshots"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"2026-01-0{d}" for d in range(1, 6)]
    assert alice.http.get("/snapshots", params={"cursor": "%%"}).status_code == 400


def test_get_delete_and_prefixes(api: dict[str, Api]) -> None:
    """A snapshot is reachable by a unique prefix and gone after DELETE."""
    alice = api["alice"]
    blobs = random_blobs(2)
    manifest = manifest_of(blobs, name="Iris Snapshot", tags=["v1"])
    alice.upload(blobs)
    sid = alice.commit(manifest).json()["id"]

    detail = alice.http.get(f"/snapshots/{sid[:6]}").json()
    assert detail["snapshot"]["id"] == sid
    assert detail["snapshot"]["name"] == "Iris Snapshot"
    assert detail["manifest"]["files"][0][0] == "f0.bin"
    raw = alice.http.get(f"/snapshots/{sid[:6]}/manifest")
    assert raw.content == manifest.encode()
    assert raw.headers["X-Snapkit-Snapshot-Id"] == sid

    assert alice.http.get(f"/snapshots/{sid[:3]}").json()["code"] == "bad_request"
    assert alice.http.delete(f"/snapshots/{sid[:6]}").json() == {"id": sid}
    assert alice.http.get(f"/snapshots/{sid}").status_code == 404
    # The blobs stay the caller's, so committing again needs no upload.
    assert alice.commit(manifest).status_code == 201


def test_diff_and_audit_on_the_server(api: dict[str, Api]) -> None:
    alice = api["alice"]
    blobs = random_blobs(3)
    alice.upload(blobs)
    a = alice.commit(manifest_of(blobs[:2], name="a")).json()["id"]
    b = alice.commit(manifest_of(blobs, name="b")).json()["id"]
    diff = alice.http.get(f"/snapshots/{a[:8]}/diff/{b[:8]}")
    assert diff.status_code == 200
    found = diff.json()
    assert found["changed"] is True
    # Both sides name the full ids the prefixes resolved to.
    assert found["a"] == {"label": f"server#{a[:12]}", "id": a}
    assert found["b"] == {"label": f"server#{b[:12]}", "id": b}
    # The stored sizes of what b adds come from alice's own uploads.
    assert found["totals"]["upload_bytes"] == blobs[2].stored_size
    assert found["totals"]["upload_exact"] is True
    audit = alice.http.get(f"/snapshots/{b[:6]}/audit")
    assert audit.status_code == 200
    assert audit.json()["totals"]["files"] == 3
    assert audit.json()["source"] == {
        "label": f"server#{b[:12]}",
        "id": b,
        "live": False,
    }


def test_archive_download_holds_the_snapshot(
    api: dict[str, Api], tmp_path: Path
) -> None:
    alice = api["alice"]
    blobs = random_blobs(3)
    manifest = manifest_of(blobs)
    alice.upload(blobs)
    sid = alice.commit(manifest).json()["id"]
    answer = alice.http.get(f"/snapshots/{sid}/archive")
    assert answer.status_code == 200
    path = tmp_path / "down.snap"
    path.write_bytes(answer.content)
    with Archive(path) as archive:
        assert [s.id for s in archive.snapshots()] == [sid]
        assert archive.get(blobs[0].id) == blobs[0].decode("test")
        assert archive.verify() == []


def test_tokens_are_stored_only_as_hashes(tmp_path: Path) -> None:
    """The database never holds a token's secret; a wrong secret is refused."""
    folder = tmp_path
    meta = open_metadata(folder)
    try:
        token = issue_token(meta, "alice")
        assert token.startswith("snk_")
        parts = parse_token(token)
        assert parts is not None
        _, secret = parts
        user = authenticate(meta, token)
        assert user is not None and user.name == "alice"
        wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
        assert authenticate(meta, wrong) is None
        assert authenticate(meta, f"snk_{'x' * 12}_{secret}") is None
    finally:
        meta.close()
    raw = (folder / "metadata.sqlite3").read_bytes()
    for suffix in ("-wal",):
        wal = folder / f"metadata.sqlite3{suffix}"
        if wal.exists():
            raw += wal.read_bytes()
    assert secret.encode() not in raw


def test_metadata_is_durable_sqlite(tmp_path: Path) -> None:
    """The embedded database runs in WAL mode with synchronous=FULL."""
    meta = open_metadata(tmp_path)
    assert isinstance(meta, SQLiteMetadata)
    assert meta._db is not None
    assert meta._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    meta.close()
    db = sqlite3.connect(tmp_path / "metadata.sqlite3")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


def test_design_doc_lists_every_error_code() -> None:
    """docs/design.md's server section names each stable problem code."""
    from snapkit.server.app import CODES

    design = Path(__file__).parents[2] / "docs" / "design.md"
    text = design.read_text(encoding="utf-8")
    section = text[
        text.index("\n## Server\n") : text.index("\n## Garbage collection\n")
    ]
    assert [code for code in CODES if f"`{code}`" not in section] == []
