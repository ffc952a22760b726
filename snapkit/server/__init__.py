"""``snapkit server``: an HTTP service that is a multi-user repository.

The embedded default is one process: SQLite for metadata and a folder of pack
files for blob content, both under one data folder::

    DATA/
      metadata.sqlite3   users, token hashes, blob ownership and forms, snapshots
      packs/             a snapkit local store shared by every user
      forms/             forms of blobs that differ from the packs' copy

Modules: :mod:`.app` (the HTTP API), :mod:`.auth` (tokens),
:mod:`.metadata` (the database behind a small interface), :mod:`.storage`
(the shared pack store and form files). They need the ``server`` extra
(``pip install 'snapkit[server]'``); importing this package does not.

:class:`EmbeddedServer` runs the app on loopback in a background thread, for
tests and ``snapkit demo``.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from snapkit.errors import RemoteError, UsageError

__all__ = ["DEFAULT_PORT", "EmbeddedServer", "listen_socket"]

DEFAULT_PORT = 8765


def listen_socket(host: str, port: int) -> socket.socket:
    """Bind ``host:port`` before anything starts, so a busy port is one clear
    error (UsageError, exit 2) rather than the web server's own log lines.

    The socket is made from ``getaddrinfo``'s answer, so its protocol is
    ``IPPROTO_TCP``: asyncio turns Nagle's algorithm off (``TCP_NODELAY``)
    only on sockets that say so, and with it on, every response whose
    headers and body go out in two writes waits ~40 ms for a delayed ACK.
    """
    if not 0 <= port <= 65535:  # getaddrinfo would wrap 70000 to 4464
        raise UsageError(f"port {port} is not a TCP port; use 0 (any free) to 65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise UsageError(
            f"--host {host!r} is not an address this machine can listen on "
            f"({exc.strerror}); give an IP address such as 127.0.0.1 or 0.0.0.0"
        ) from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"cannot listen on {host}:{port} ({exc.strerror}); stop the process "
            "that holds it or pass another --port"
        ) from exc
    return sock


class EmbeddedServer:
    """The server on ``host`` in a daemon thread; a free port unless given.

    Use as a context manager; ``url`` is set once it accepts connections.
    """

    def __init__(
        self,
        data: str | Path,
        host: str = "127.0.0.1",
        port: int = 0,
        **config: Any,
    ) -> None:
        from snapkit.server.app import ServerConfig

        self.config = ServerConfig(data=Path(data), **config)
        self.host = host
        self.port = port
        self.url = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    def start(self, timeout: float = 20.0) -> EmbeddedServer:
        import uvicorn

        from snapkit.server.app import create_app

        sock = listen_socket(self.host, self.port)
        self._socket = sock
        self.port = sock.getsockname()[1]
        self.url = f"http://{self.host}:{self.port}"
        config = uvicorn.Config(
            create_app(self.config),
            log_level="warning",
            lifespan="on",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name="snapkit-server",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RemoteError(
                    f"the embedded server on {self.url} did not start; "
                    "see the log above"
                )
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=20)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def add_user(self, name: str) -> str:
        """Create a user (if needed) and return a new token for them."""
        from snapkit.server.auth import issue_token
        from snapkit.server.metadata import open_metadata

        meta = open_metadata(self.config.data)
        try:
            return issue_token(meta, name)
        finally:
            meta.close()
