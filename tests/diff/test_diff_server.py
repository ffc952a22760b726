"""Diff and audit of server snapshots named by a bare id, against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import snapkit
from snapkit.diff import load_source
from snapkit.remote.client import Client
from snapkit.server import EmbeddedServer

from .test_diff_live import open_fds


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(tmp_path_factory.mktemp("server")) as running:
        yield running


@pytest.fixture
def login(
    server: EmbeddedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str]:
    """A fresh user, configured the way `snapkit login` would (URL and token)."""
    token = server.add_user(f"u{os.urandom(4).hex()}")
    monkeypatch.setenv("SNAPKIT_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("SNAPKIT_URL", server.url)
    monkeypatch.setenv("SNAPKIT_TOKEN", token)
    return server.url, token


@pytest.fixture
def pushed(tmp_path: Path, login: tuple[str, str]) -> tuple[str, str]:
    """Two snapshots on the server: the second edits a file and adds one."""
    root = tmp_path / "work"
    root.mkdir()
    (root / "data.bin").write_bytes(os.urandom(200_000))
    (root / "notes.txt").write_text("first\n")
    with Client(progress=False) as client:
        a = client.create_snapshot(objects={"n": 1}, files=root, name="one").id
        (root / "notes.txt").write_text("second, and longer\n")
        (root / "new.bin").write_bytes(os.urandom(50_000))
        b = client.create_snapshot(objects={"n": 2}, files=root, name="two").id
    return a, b


def server_connections(url: str) -> int:
    """How many TCP sockets of this process are connected to ``url``'s port."""
    port = int(url.rsplit(":", 1)[1])
    # /proc/self/fd names each socket socket:[inode]; the tcp tables map
    # inodes to addresses (column 2 is the remote address, hex port last).
    inodes = {fd.split("socket:[")[1][:-1] for fd in open_fds() if "socket:[" in fd}
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as fh:
            for row in fh.read().splitlines()[1:]:
                cols = row.split()
                remote_port = int(cols[2].rsplit(":", 1)[1], 16)
                count += cols[9] in inodes and remote_port == port
    return count


def test_bare_ids_resolve_against_the_configured_server(
    pushed: tuple[str, str], login: tuple[str, str]
) -> None:
    """diff(prefix_a, prefix_b): full ids, the changed files, an exact upload."""
    a, b = pushed
    d = snapkit.diff(a[:10], b[:10])

    assert (d.a_id, d.b_id) == (a, b)
    assert (d.a, d.b) == (a[:10], b[:10])
    assert {f.path: f.status for f in d.files} == {
        "notes.txt": "modified",
        "new.bin": "added",
    }
    assert [(o.name, o.status) for o in d.objects] == [("n", "changed")]
    assert d.totals.upload_exact
    with Client(progress=False) as client:
        manifest_a, manifest_b = client.snapshot(a), client.snapshot(b)
        fresh = manifest_b.blob_ids() - manifest_a.blob_ids()
        assert d.totals.upload_bytes == sum(client.stored_sizes(fresh).values())

    report = snapkit.audit(b[:10], use_config=False)
    assert report.snapshot_id == b and report.totals.stored_exact
    assert report.files[0].name == "data.bin"


def test_diff_and_audit_close_the_client_they_open(
    pushed: tuple[str, str], login: tuple[str, str]
) -> None:
    """Three rounds by id: no connection to the server is left open."""
    a, b = pushed
    url = login[0]
    snapkit.diff(a, b)
    before = server_connections(url)

    for _ in range(3):
        snapkit.diff(a[:8], b[:8])
        snapkit.audit(b[:8], baseline=a[:8], use_config=False)
        with load_source(a[:8]) as src:
            assert server_connections(url) > before  # the probe sees a live one
            assert src.snapshot_id == a

    assert server_connections(url) == before


def test_client_diff_fills_in_ids_and_exact_upload(pushed: tuple[str, str]) -> None:
    """Client.diff passes (repository, id) pairs: ids known, sizes asked."""
    a, b = pushed
    with Client(progress=False) as client:
        d = client.diff(a[:10], b[:10])
        assert (d.a_id, d.b_id) == (a, b)
        assert d.totals.upload_exact and d.totals.upload_bytes > 50_000
        client.list_snapshots()  # the client is still open afterwards


def test_bare_id_without_the_client_extra_is_a_usage_error(tmp_path: Path) -> None:
    """In a child without httpx: a one-line install hint, not an ImportError."""
    code = (
        "import sys\n"
        "sys.modules['httpx'] = None  # as if the client extra were not installed\n"
        "import snapkit\n"
        "from snapkit.errors import UsageError\n"
        "try:\n"
        "    snapkit.diff('abcdef12', 'abcdef34')\n"
        "except UsageError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert child.stdout.startswith("UsageError 'abcdef12' is not a file"), child
    assert "pip install 'snapkit[client]'" in child.stdout
