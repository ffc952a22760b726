"""Nothing half-written: a push killed midway leaves no snapshot, and the
next push sends only what is still missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from snapkit.remote.client import Client
from snapkit.server import EmbeddedServer
from snapkit.store.archive import Archive
from snapkit.workspace.manifest import FileEntry, Manifest

BLOBS = 120
SIZE = 32 * 1024
BATCH = 4 * SIZE  # small batches: one upload every four blobs

CHILD = textwrap.dedent(
    """
    import sys, time
    from snapkit.remote.client import Client

    url, token, archive, batch = sys.argv[1:5]
    client = Client(url, token, progress=False, batch_bytes=int(batch))

    def reported(blobs, sent):
        print(blobs, flush=True)
        time.sleep(0.2)  # give the parent time to kill us mid-push

    client.on_batch = reported
    client.push(archive)
    print("done", flush=True)
    """
)


def _archive(path: Path) -> Manifest:
    files = []
    with Archive(path, "w") as archive:
        for i in range(BLOBS):
            blob = archive.put(os.urandom(SIZE))
            files.append(FileEntry(f"f{i}", "file", 0o644, SIZE, 0, [(blob.id, SIZE)]))
        manifest = Manifest(name="big", created="2026-01-01T00:00:00Z", files=files)
        archive.add_snapshot(manifest)
    return manifest


def test_killed_push_leaves_no_snapshot_and_resumes(
    tmp_path: Path, server: EmbeddedServer, token: str
) -> None:
    manifest = _archive(tmp_path / "big.snap")
    script = tmp_path / "child.py"
    script.write_text(CHILD)

    child = subprocess.Popen(
        [
            sys.executable,
            str(script),
            server.url,
            token,
            str(tmp_path / "big.snap"),
            str(BATCH),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    reported = 0
    for line in child.stdout:
        assert line.strip() != "done", "the child finished before it was killed"
        reported = int(line)
        if reported >= BLOBS // 2:
            os.kill(child.pid, signal.SIGKILL)
            break
    child.wait(timeout=30)
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    with Client(server.url, token, progress=False) as client:
        assert client.list_snapshots() == []
        still_missing = client.missing(manifest.blob_ids())
        # Everything the child reported is recorded; at most one batch more.
        assert BLOBS - reported - 4 <= len(still_missing) <= BLOBS - reported

        [stats] = client.push(tmp_path / "big.snap")
        assert stats.blobs_sent == len(still_missing)
        assert client.blobs_sent == len(still_missing)
        assert [s.id for s in client.list_snapshots()] == [manifest.id]
        # On the wire: the missing blobs plus small change, not the whole.
        payload = len(still_missing) * SIZE
        assert payload <= client.bytes_sent < payload + 64 * 1024
        assert client.bytes_sent < 0.6 * BLOBS * SIZE
