"""The progress bar: on a terminal only, off with --quiet or --json, and
absent without failing when rich is not installed. Each case is a real
`snapkit push` child whose stderr is a pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest
from server.conftest import manifest_of, random_blobs

from snapkit.server import EmbeddedServer
from snapkit.store.archive import Archive

# Runs the CLI with `rich` made unimportable, as on a `[server]`-only install.
WITHOUT_RICH = (
    "import sys; sys.modules['rich'] = None; "
    "from snapkit.cli import main; main(prog_name='snapkit')"
)


def _push_on_a_terminal(
    url: str, token: str, archive: Path, *flags: str, rich: bool = True
) -> tuple[int, str, str]:
    """Run `snapkit push`; return (exit code, stdout, what the terminal got)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    start = ["-m", "snapkit"] if rich else ["-c", WITHOUT_RICH]
    env = {
        **os.environ,
        "SNAPKIT_URL": url,
        "SNAPKIT_TOKEN": token,
        "SNAPKIT_CONFIG": os.devnull,
        "TERM": "xterm-256color",
    }
    env.pop("NO_COLOR", None)
    child = subprocess.Popen(
        [sys.executable, *start, "push", str(archive), *flags],
        stdout=subprocess.PIPE,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    seen = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO once the child has closed its end
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    out, _ = child.communicate(timeout=120)
    reader.join(timeout=30)
    os.close(leader)
    return child.returncode, out.decode(), seen.decode(errors="replace")


@pytest.fixture
def archive(tmp_path: Path) -> tuple[Path, str]:
    blobs = random_blobs(40, size=64 * 1024)
    path = tmp_path / "a.snap"
    with Archive(path, "w") as written:
        for blob in blobs:
            written.put_raw(blob)
        sid = written.add_snapshot(manifest_of(blobs))
    return path, sid


def test_bar_on_a_terminal(
    server: EmbeddedServer, token: str, archive: tuple[Path, str]
) -> None:
    path, sid = archive
    code, out, terminal = _push_on_a_terminal(server.url, token, path)
    assert code == 0, terminal
    assert f"push {sid[:12]}" in terminal
    # Results go to stdout, and only the one summary line.
    assert out.splitlines()[0].startswith(f"pushed {sid[:12]}")
    assert len(out.splitlines()) == 1


@pytest.mark.parametrize("flag", ["--quiet", "--json"])
def test_no_bar_with_quiet_or_json(
    server: EmbeddedServer, token: str, archive: tuple[Path, str], flag: str
) -> None:
    path, sid = archive
    code, out, terminal = _push_on_a_terminal(server.url, token, path, flag)
    assert code == 0, terminal
    assert terminal == ""
    assert sid in out if flag == "--json" else out.startswith("pushed")


def test_no_rich_means_no_bar_not_a_crash(
    server: EmbeddedServer, token: str, archive: tuple[Path, str]
) -> None:
    """With only the server extra installed, push on a terminal works."""
    path, sid = archive
    code, out, terminal = _push_on_a_terminal(server.url, token, path, rich=False)
    assert code == 0, terminal
    assert terminal == ""
    assert out.startswith(f"pushed {sid[:12]}")
