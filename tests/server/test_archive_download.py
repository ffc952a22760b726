"""The archive download is streamed as it is assembled: nothing on disk."""

from __future__ import annotations

from pathlib import Path

from server.conftest import Api, manifest_of, random_blobs
from snapkit.server import EmbeddedServer
from snapkit.store.archive import Archive


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
