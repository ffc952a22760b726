"""Drive headless Chromium over the DevTools protocol, to render an HTML page.

Chromium's ``--enable-logging`` prints every console message at INFO level
whatever its real level, so a log filter cannot tell ``console.error`` from
``console.log``. The protocol can: :func:`render` opens the page with
``--remote-debugging-pipe`` (JSON messages, each ended by a NUL byte, read on
fd 3 and written on fd 4) and records every console call, uncaught
exception, browser log entry and network request, with its level.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Console levels that fail a page: what the DevTools protocol calls an error.
ERROR_LEVELS = frozenset({"error", "assert"})


@dataclass
class Rendered:
    """What the browser saw while loading one page."""

    #: ``(level, text)`` of every console call and browser log entry.
    console: list[tuple[str, str]] = field(default_factory=list)
    #: The message of every uncaught exception.
    exceptions: list[str] = field(default_factory=list)
    #: Every URL the page requested, the page itself included.
    requests: list[str] = field(default_factory=list)
    #: Attributes of ``#rendered`` once it appeared, or None.
    marker: dict[str, str] | None = None
    screenshot: bytes = b""

    @property
    def errors(self) -> list[str]:
        """Console messages at error level and uncaught exceptions."""
        return [
            f"console.{level}: {text}"
            for level, text in self.console
            if level in ERROR_LEVELS
        ] + [f"uncaught: {text}" for text in self.exceptions]


class _Pipe:
    def __init__(self, write_fd: int, read_fd: int, deadline: float) -> None:
        self.write_fd, self.read_fd, self.deadline = write_fd, read_fd, deadline
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str = ""
    ) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method}
        message["params"] = params or {}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        wanted = self.next_id
        reply = self.wait(lambda m: m.get("id") == wanted)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def wait(self, match: Any) -> dict[str, Any]:
        """Return the first message ``match`` accepts; keep the others."""
        while True:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                message: dict[str, Any] = json.loads(raw)
                if match(message):
                    return message
                self.events.append(message)
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self.read_fd], [], [], left)
            if ready:
                chunk = os.read(self.read_fd, 1 << 20)
                if not chunk:
                    raise EOFError("Chromium closed the DevTools pipe")
                self.buffer += chunk


# The protocol wants its pipe on fds 3 and 4: a child puts the ends there and
# becomes Chromium. The ends are above 9, so the first dup2 cannot clobber
# the second's source.
_TRAMPOLINE = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
    "os.execv(sys.argv[3], sys.argv[3:])"
)


def _high_pipe() -> tuple[int, int]:
    low = os.pipe()
    high = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in low)
    for fd in low:
        os.close(fd)
    return high[0], high[1]


def render(chromium: str, page: Path, profile: Path, timeout: float = 60) -> Rendered:
    """Load ``page`` in a fresh headless Chromium; return what happened.

    Background networking, component updates and sync are off, so the only
    requests are the page's own.
    """
    to_browser_r, to_browser_w = _high_pipe()
    from_browser_r, from_browser_w = _high_pipe()
    with open(profile.with_suffix(".log"), "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _TRAMPOLINE,
                str(to_browser_r),
                str(from_browser_w),
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--window-size=1200,900",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            pass_fds=(to_browser_r, from_browser_w),
            stdout=log,
            stderr=log,
        )
    os.close(to_browser_r)
    os.close(from_browser_w)
    pipe = _Pipe(to_browser_w, from_browser_r, time.monotonic() + timeout)
    try:
        return _load(pipe, page)
    finally:
        try:
            pipe.send("Browser.close")
        except (OSError, EOFError, TimeoutError, RuntimeError):
            proc.kill()
        proc.wait(timeout=30)
        os.close(to_browser_w)
        os.close(from_browser_r)


def _load(pipe: _Pipe, page: Path) -> Rendered:
    target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
        "sessionId"
    ]
    for domain in ("Runtime", "Log", "Network", "Page"):
        pipe.send(f"{domain}.enable", session=session)
    pipe.send("Page.navigate", {"url": page.as_uri()}, session=session)
    pipe.wait(lambda m: m.get("method") == "Page.loadEventFired")

    out = Rendered()
    probe = (
        "(() => { const m = document.getElementById('rendered');"
        " return m ? Object.fromEntries([...m.attributes]"
        ".map(a => [a.name, a.value])) : null; })()"
    )
    answer = pipe.send(
        "Runtime.evaluate", {"expression": probe, "returnByValue": True}, session
    )
    out.marker = answer["result"].get("value")
    shot = pipe.send("Page.captureScreenshot", {"format": "png"}, session)
    out.screenshot = base64.b64decode(shot["data"])

    for event in pipe.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(
                str(a.get("value", a.get("description"))) for a in params["args"]
            )
            out.console.append((params["type"], text))
        elif method == "Log.entryAdded":
            entry = params["entry"]
            out.console.append((entry["level"], entry["text"]))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            exc = details.get("exception", {})
            out.exceptions.append(exc.get("description") or details.get("text", ""))
        elif method == "Network.requestWillBeSent":
            out.requests.append(params["request"]["url"])
    return out
