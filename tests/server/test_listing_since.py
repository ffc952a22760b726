"""`since` is a time, not a string: offsets count, nonsense is refused."""

from __future__ import annotations

import pytest

from server.conftest import Api, manifest_of


@pytest.fixture
def three(api: dict[str, Api]) -> list[str]:
    """Snapshots created 22:00, 22:49 and 23:30 UTC on 2026-12-03."""
    ids = []
    for created in ("22:00:00.000000", "22:49:00.000000", "23:30:00.000000"):
        m = manifest_of([], name=created, created=f"2026-12-03T{created}Z")
        ids.append(api["alice"].commit(m).json()["id"])
    return ids


@pytest.mark.parametrize(
    ("since", "first"),
    [
        ("2026-12-03T23:49:00+01:00", 1),  # 22:49 UTC: the match is included
        ("2026-12-03T23:49:00.000001+01:00", 2),
        ("2026-12-03T22:49:00Z", 1),
        ("2026-12-03T22:49:00", 1),  # no offset: UTC
        ("2026-12-04T00:30:00+02:00", 1),  # 22:30 UTC, on the day before
        ("2026-12-03", 0),
        ("2026-12-04", 3),
    ],
)
def test_since_compares_times_in_utc(
    api: dict[str, Api], three: list[str], since: str, first: int
) -> None:
    page = api["alice"].http.get("/snapshots", params={"since": since}).json()
    assert [s["id"] for s in page["snapshots"]] == three[first:]


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01", "12/03/2026", ""])
def test_since_that_is_no_time_is_400(api: dict[str, Api], since: str) -> None:
    answer = api["alice"].http.get("/snapshots", params={"since": since})
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["code"] == "bad_request"
    assert repr(since) in problem["detail"]
