"""Only missing blobs cross the network: a small change sends a small push."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from snapkit.remote.client import Client

MiB = 1024 * 1024


@pytest.mark.slow
def test_second_push_after_one_percent_change_sends_under_three_percent(
    tmp_path: Path, client: Client
) -> None:
    """200 MB workspace, 2 MB of it rewritten: the second capture sends < 6 MB.

    The bytes are seeded, not os.urandom: what a 1 MiB rewrite costs depends
    on where the content puts the chunk boundaries around it. With the first
    chunker (mean 1 MiB) it was 1.3 to 3.1 MiB over 30 seeds, and unseeded
    data made two unlucky files cross the 3 % line now and then; with the
    present sizes (mean 0.61 MiB, normalized chunking 2) it is 1.3 to 2.5
    MiB, so no pair of files can cross it, and the seed keeps a failure
    replayable.
    """
    rng = random.Random(2026)
    ws = tmp_path / "ws"
    ws.mkdir()
    for i in range(50):
        (ws / f"part{i:02}.bin").write_bytes(rng.randbytes(4 * MiB))
    total = 200 * MiB

    client.create_snapshot(files=ws, name="before")
    first = client.bytes_sent
    assert first >= total

    for name in ("part07.bin", "part31.bin"):
        with open(ws / name, "r+b") as f:
            f.seek(2 * MiB)
            f.write(rng.randbytes(MiB))
    client.create_snapshot(files=ws, name="after")
    second = client.bytes_sent - first

    assert second < 0.03 * total, f"second push sent {second} bytes"
    assert len(client.list_snapshots()) == 2
