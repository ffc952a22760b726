"""A tiny HTTP server on loopback that misbehaves on purpose, and counts.

Not a mock of snapkit's server: a real socket that the real client talks to,
for what the real server will not do on demand (fail, hang, drop).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from types import TracebackType


class FlakyServer:
    """Answers ``GET /api/v1/me`` with ``{"user": "flaky"}``, after ``fail``
    bad answers: ``"503"`` (an HTTP 503 problem), ``"drop"`` (close the
    connection without answering) or ``"hang"`` (answer nothing for
    ``hang`` seconds). ``"404"`` answers every request 404. ``requests``
    counts the requests that arrived, with their times."""

    def __init__(self, fail: int = 0, mode: str = "503", hang: float = 5.0) -> None:
        self.fail = fail
        self.mode = mode
        self.hang = hang
        self.times: list[float] = []
        self.paths: list[str] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def requests(self) -> int:
        return len(self.times)

    def __enter__(self) -> FlakyServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        # Wakes the accept() below (closing alone does not, on Linux).
        self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            while True:
                request = self._read_request(conn)
                if request is None:
                    return
                self.times.append(time.monotonic())
                self.paths.append(request)
                failing = self.mode == "404" or len(self.times) <= self.fail
                if failing and self.mode == "drop":
                    return
                if failing and self.mode == "hang":
                    self._stop.wait(self.hang)
                    return
                if failing:
                    status = 404 if self.mode == "404" else 503
                    body = {"code": "not_found" if status == 404 else "internal"}
                    body["detail"] = "flaky server says no"
                    self._answer(conn, status, body)
                else:
                    self._answer(conn, 200, {"user": "flaky"})

    @staticmethod
    def _read_request(conn: socket.socket) -> str | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            rest += chunk
        return head.split(b" ")[1].decode()

    @staticmethod
    def _answer(conn: socket.socket, status: int, body: dict[str, str]) -> None:
        payload = json.dumps(body).encode()
        reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
        kind = "application/json" if status == 200 else "application/problem+json"
        conn.sendall(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
