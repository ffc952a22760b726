"""The blob upload protocol: verify everything, store durably, then record."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import pytest

from server.conftest import Api, manifest_of, random_blobs
from snapkit.remote import encode_records, iter_records
from snapkit.server import EmbeddedServer
from snapkit.store.local import LocalStore
from snapkit.store.repository import StoredBlob


def test_upload_then_missing_then_download(api: dict[str, Api]) -> None:
    """Uploaded blobs stop being missing and come back byte for byte."""
    blobs = [*random_blobs(5, 1000), StoredBlob.from_bytes(b"a" * 100_000)]
    ids = [b.id for b in blobs]
    assert api["alice"].missing(ids).json()["missing"] == ids

    answer = api["alice"].upload(blobs)
    assert answer.status_code == 201
    assert answer.json()["blobs"] == 6
    assert api["alice"].missing(ids).json()["missing"] == []

    compressed = blobs[-1]
    got = api["alice"].http.get(f"/blobs/{compressed.id}")
    assert got.headers["X-Snapkit-Codec"] == str(int(compressed.codec)) == "1"
    assert got.headers["X-Snapkit-Raw-Size"] == "100000"
    assert got.content == compressed.data

    batch = api["alice"].http.post("/blobs/fetch", json={"ids": ids[::-1]})
    assert [b.id for b in iter_records(batch.content)] == ids[::-1]


def test_mismatched_blob_refused_and_nothing_recorded(
    api: dict[str, Api], server: EmbeddedServer
) -> None:
    """A blob whose bytes do not match its id fails the whole body with 400."""
    good = random_blobs(3)
    forged = dataclasses.replace(good[1], id=random_blobs(1)[0].id)
    body = [good[0], forged, good[2]]

    answer = api["alice"].upload(body)
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["code"] == "blob_mismatch"
    assert problem["id"] == forged.id
    assert forged.id in problem["detail"]

    # Nothing from that body counts, not even the good blobs before the bad one.
    ids = [b.id for b in body]
    assert api["alice"].missing(ids).json() == {"missing": ids, "sizes": {}}
    assert api["alice"].http.get(f"/blobs/{good[0].id}").status_code == 404
    assert list((server.config.packs / "packs").glob("*/*.pack")) == []


def test_truncated_body_refused(api: dict[str, Api]) -> None:
    """A body that ends inside a record is a 400 and stores nothing."""
    blobs = random_blobs(2)
    body = encode_records(blobs)[:-10]
    answer = api["alice"].http.post("/blobs", content=body)
    assert answer.status_code == 400
    assert answer.json()["code"] == "bad_request"
    assert len(api["alice"].missing([b.id for b in blobs]).json()["missing"]) == 2


def test_upload_is_stored_once_for_all_users(
    api: dict[str, Api], server: EmbeddedServer
) -> None:
    """Two users uploading the same content share one stored copy."""
    blobs = random_blobs(4)
    assert api["alice"].upload(blobs).status_code == 201
    assert api["bob"].upload(blobs).status_code == 201
    assert api["bob"].missing([b.id for b in blobs]).json()["missing"] == []
    server.stop()
    store = LocalStore(server.config.packs, create=False)
    try:
        held = sum(len(p.blobs) for p in store._packs.values())
    finally:
        store.close()
    assert held == 4


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_over_the_cap_is_413(tmp_path: Path, chunked: bool) -> None:
    """Bodies over --max-body are refused with 413 body_too_large."""
    with EmbeddedServer(tmp_path / "srv", max_body=256 * 1024) as small:
        token = small.add_user("carol")
        body = encode_records(random_blobs(80, 4096))  # ~330 KB
        content = iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
        with httpx.Client(
            base_url=small.url, headers={"Authorization": f"Bearer {token}"}
        ) as http:
            answer = http.post("/api/v1/blobs", content=content if chunked else body)
            assert answer.status_code == 413
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["code"] == "body_too_large"
            assert answer.json()["limit"] == 256 * 1024


def test_missing_caps_the_number_of_ids(api: dict[str, Api]) -> None:
    """More than 10,000 ids in one question is refused, not answered slowly."""
    ids = [f"{i:064x}" for i in range(10_001)]
    answer = api["alice"].missing(ids)
    assert answer.status_code == 413
    assert answer.json()["code"] == "too_many_ids"


def test_malformed_blob_id_is_bad_request(api: dict[str, Api]) -> None:
    answer = api["alice"].missing(["../../etc/passwd"])
    assert answer.status_code == 400
    assert answer.json()["code"] == "bad_request"


def test_commit_is_idempotent_and_needs_canonical_bytes(api: dict[str, Api]) -> None:
    """Committing the same manifest twice answers the same id, listed once."""
    blobs = random_blobs(2)
    manifest = manifest_of(blobs)
    api["alice"].upload(blobs)
    first = api["alice"].commit(manifest).json()
    second = api["alice"].commit(manifest).json()
    assert first == second == {"id": manifest.id}
    assert len(api["alice"].http.get("/snapshots").json()["snapshots"]) == 1

    garbage = api["alice"].http.post("/snapshots", content=b"\x93not a manifest")
    assert garbage.status_code == 400
    assert garbage.json()["code"] == "bad_manifest"


def test_a_blob_over_the_cap_goes_alone(tmp_path: Path) -> None:
    """A body holding one blob larger than --max-body is accepted, and so is
    a batch download of it alone; a larger body of several blobs is 413,
    with a message that says what to do."""
    cap = 256 * 1024
    with EmbeddedServer(tmp_path / "srv", max_body=cap) as small:
        api = Api(small.url, small.add_user("carol"))
        try:
            big = random_blobs(1, 1024 * 1024)[0]
            little = random_blobs(1, 1000)[0]
            for body in ([big, little], [little, big]):
                refused = api.upload(body)
                assert refused.status_code == 413
                assert refused.json()["code"] == "body_too_large"
                assert "goes alone" in refused.json()["detail"]
            assert api.missing([big.id, little.id]).json()["sizes"] == {}

            assert api.upload([big]).status_code == 201
            assert api.upload([little]).status_code == 201
            alone = api.http.post("/blobs/fetch", json={"ids": [big.id]})
            assert list(iter_records(alone.content)) == [big]
            both = api.http.post("/blobs/fetch", json={"ids": [big.id, little.id]})
            assert both.status_code == 413
        finally:
            api.http.close()
