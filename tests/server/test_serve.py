"""`snapkit server serve` as a child process: starts, stops, and says
plainly when its port is taken."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest


def _serve(data: Path, port: int) -> subprocess.Popen[str]:
    command = ["serve", "--port", str(port), "--data", str(data)]
    return subprocess.Popen(
        [sys.executable, "-m", "snapkit", "server", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SNAPKIT_SERVER_DATA": ""},
    )


def test_busy_port_is_one_usage_error(tmp_path: Path) -> None:
    """Exit 2 with one line naming the address, not the web server's log."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        child = _serve(tmp_path / "data", port)
        out, err = child.communicate(timeout=60)
    assert child.returncode == 2
    assert out == ""
    assert err.splitlines() == [
        f"snapkit: error: cannot listen on 127.0.0.1:{port} (Address already in "
        "use); stop the process that holds it or pass another --port"
    ]


def test_serve_answers_then_stops_on_interrupt(tmp_path: Path) -> None:
    """On a free port (0: the system picks) it prints where it listens,
    answers /health, and on SIGINT shuts down cleanly, then exits 130 like
    every command interrupted with Ctrl-C."""
    child = _serve(tmp_path / "data", 0)
    try:
        assert child.stderr is not None
        first = child.stderr.readline()
        found = re.search(r"on (http://127\.0\.0\.1:\d+) ", first)
        assert found, first
        health = httpx.get(found.group(1) + "/api/v1/health", timeout=30)
        assert health.json()["status"] == "ok"
    finally:
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    assert child.returncode == 130
    assert "Application shutdown complete" in err
    assert err.splitlines()[-1] == "snapkit: interrupted"


def test_listening_socket_gets_nagle_turned_off_by_asyncio() -> None:
    """Connections accepted on the server's socket have TCP_NODELAY set.

    asyncio sets it only on sockets whose protocol says TCP; a socket made
    as ``socket(AF_INET, SOCK_STREAM)`` says 0, and every request then waited
    ~40 ms for a delayed ACK between a response's headers and its body.
    """
    import asyncio
    import socket

    from snapkit.server import listen_socket

    sock = listen_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    seen: list[int] = []

    async def main() -> None:
        async def handle(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            accepted = writer.get_extra_info("socket")
            seen.append(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(handle, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(100):
                if seen:
                    break
                await asyncio.sleep(0.01)
            writer.close()

    asyncio.run(main())
    assert seen and seen[0] != 0


@pytest.mark.parametrize("port", ["70000", "65536", "-1"])
def test_a_port_out_of_range_is_refused_not_wrapped(port: str, tmp_path: Path) -> None:
    """getaddrinfo would bind 70000 as 4464; the option refuses it first."""
    from click.testing import CliRunner

    from snapkit.cli import main
    from snapkit.errors import UsageError
    from snapkit.server import listen_socket

    result = CliRunner().invoke(
        main, ["server", "serve", "--data", str(tmp_path / "d"), "--port", port]
    )
    assert result.exit_code == 2
    assert "--port" in result.output + result.stderr
    with pytest.raises(UsageError, match="not a TCP port"):
        listen_socket("127.0.0.1", int(port))
