"""Owner only: another user's ids answer exactly like ids nobody created."""

from __future__ import annotations

import secrets

import httpx
import pytest

from server.conftest import Api, manifest_of, random_blobs


def _same(other: httpx.Response, unknown: httpx.Response, swap: dict[str, str]) -> None:
    body = other.text
    for theirs, made_up in swap.items():
        body = body.replace(theirs, made_up)
    assert other.status_code == unknown.status_code
    assert other.headers["content-type"] == unknown.headers["content-type"]
    assert body == unknown.text


@pytest.fixture
def two_snapshots(api: dict[str, Api]) -> dict[str, tuple[str, list[str]]]:
    """Each user commits one snapshot; returns {user: (snapshot id, blob ids)}."""
    out = {}
    for user in ("alice", "bob"):
        blobs = random_blobs(3)
        assert api[user].upload(blobs).status_code == 201
        answer = api[user].commit(manifest_of(blobs, name=f"{user}'s"))
        assert answer.status_code == 201, answer.text
        out[user] = (answer.json()["id"], [b.id for b in blobs])
    return out


SNAPSHOT_ROUTES = [
    ("GET", "/snapshots/{id}"),
    ("GET", "/snapshots/{id}/manifest"),
    ("GET", "/snapshots/{id}/archive"),
    ("GET", "/snapshots/{id}/audit"),
    ("GET", "/snapshots/{id}/diff/{own}"),
    ("GET", "/snapshots/{own}/diff/{id}"),
    ("DELETE", "/snapshots/{id}"),
]


@pytest.mark.parametrize("length", [64, 8], ids=["full-id", "prefix"])
@pytest.mark.parametrize(("method", "route"), SNAPSHOT_ROUTES)
def test_other_users_snapshot_answers_like_unknown(
    api: dict[str, Api],
    two_snapshots: dict[str, tuple[str, list[str]]],
    method: str,
    route: str,
    length: int,
) -> None:
    """Every snapshot route gives bob the same answer for alice's id as for none."""
    theirs = two_snapshots["alice"][0][:length]
    own = two_snapshots["bob"][0]
    made_up = secrets.token_hex(32)[:length]
    bob = api["bob"].http
    other = bob.request(method, route.format(id=theirs, own=own))
    unknown = bob.request(method, route.format(id=made_up, own=own))
    assert other.status_code == 404
    _same(other, unknown, {theirs: made_up})
    # Alice's snapshot is untouched by bob's attempts, including DELETE.
    assert api["alice"].http.get(f"/snapshots/{theirs}").status_code == 200


def test_other_users_blob_answers_like_unknown(
    api: dict[str, Api], two_snapshots: dict[str, tuple[str, list[str]]]
) -> None:
    """Blob download, batch download and "missing" ignore other users' blobs."""
    theirs = two_snapshots["alice"][1][0]
    made_up = secrets.token_hex(32)
    bob = api["bob"]

    _same(
        bob.http.get(f"/blobs/{theirs}"),
        bob.http.get(f"/blobs/{made_up}"),
        {theirs: made_up},
    )
    _same(
        bob.http.post("/blobs/fetch", json={"ids": [theirs]}),
        bob.http.post("/blobs/fetch", json={"ids": [made_up]}),
        {theirs: made_up},
    )
    assert bob.http.get(f"/blobs/{theirs}").status_code == 404

    own = two_snapshots["bob"][1][0]
    answer = bob.missing([theirs, made_up, own]).json()
    assert answer == {"missing": [theirs, made_up], "sizes": {own: 4096}}


def test_listing_shows_only_own_snapshots(
    api: dict[str, Api], two_snapshots: dict[str, tuple[str, list[str]]]
) -> None:
    """Each user lists exactly their own snapshot."""
    for user in ("alice", "bob"):
        listed = api[user].http.get("/snapshots").json()["snapshots"]
        assert [s["id"] for s in listed] == [two_snapshots[user][0]]


def test_cannot_commit_blobs_uploaded_only_by_another_user(
    api: dict[str, Api],
) -> None:
    """Bob cannot reference alice's blobs until he uploads the bytes himself."""
    blobs = random_blobs(4)
    manifest = manifest_of(blobs)
    assert api["alice"].upload(blobs).status_code == 201
    assert api["alice"].commit(manifest).status_code == 201

    refused = api["bob"].commit(manifest)
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["code"] == "missing_blobs"
    assert problem["missing"] == sorted(b.id for b in blobs)
    assert api["bob"].http.get("/snapshots").json()["snapshots"] == []

    # Half the bytes are still not enough.
    assert api["bob"].upload(blobs[:2]).status_code == 201
    again = api["bob"].commit(manifest)
    assert again.status_code == 409
    assert again.json()["missing"] == sorted(b.id for b in blobs[2:])

    assert api["bob"].upload(blobs[2:]).status_code == 201
    assert api["bob"].commit(manifest).json() == {"id": manifest.id}
