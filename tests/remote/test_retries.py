"""Retries with backoff, timeouts, one-line errors, and ids checked before
they go into a URL: the real client against real sockets on loopback."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time

import pytest

from remote.flaky import FlakyServer
from snapkit.errors import NotFoundError, RemoteError, UsageError
from snapkit.remote.client import Client


@pytest.mark.parametrize("mode", ["503", "drop"])
def test_failures_are_retried_with_growing_delays(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two 503 answers (or dropped connections), then success: three
    requests, 0.25 s then 0.5 s apart, each retry logged at INFO only."""
    caplog.set_level(logging.INFO, logger="snapkit")
    with FlakyServer(fail=2, mode=mode) as flaky:
        with Client(flaky.url, "snk_x", progress=False, retries=3) as client:
            assert client.whoami() == "flaky"
        assert flaky.requests == 3
        gaps = [b - a for a, b in zip(flaky.times, flaky.times[1:], strict=False)]
    assert 0.25 <= gaps[0] < 0.25 + 0.4
    assert 0.5 <= gaps[1] < 0.5 + 0.4
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert [r.levelno for r in retries] == [logging.INFO, logging.INFO]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_persistent_5xx_gives_up_after_the_retries() -> None:
    with (
        FlakyServer(fail=100, mode="503") as flaky,
        Client(flaky.url, "snk_x", progress=False, retries=2) as client,
        pytest.raises(RemoteError, match="answered 503"),
    ):
        client.whoami()
    assert flaky.requests == 3


def test_4xx_is_not_retried() -> None:
    with (
        FlakyServer(mode="404") as flaky,
        Client(flaky.url, "snk_x", progress=False, retries=3) as client,
        pytest.raises(NotFoundError, match="flaky server says no"),
    ):
        client.whoami()
    assert flaky.requests == 1


def test_a_server_that_never_answers_times_out() -> None:
    """A read timeout is retried like a dropped connection, then reported
    with the timeout it hit."""
    with FlakyServer(fail=100, mode="hang", hang=10) as flaky:
        started = time.monotonic()
        with (
            Client(flaky.url, "snk_x", progress=False, retries=1, timeout=0.5) as c,
            pytest.raises(RemoteError, match=r"did not answer GET /me within 0\.5s"),
        ):
            c.whoami()
        took = time.monotonic() - started
        assert flaky.requests == 2
    # Two attempts of 0.5 s and one 0.25 s pause; far below the 10 s hang.
    assert 1.25 <= took < 4


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "-v"])
def test_server_down_is_one_line_on_stderr(verbose: bool, tmp_path: object) -> None:
    """`snapkit ls` against a closed port: exit 8 and exactly one line; with
    -v the three retries show first."""
    env = {
        **os.environ,
        "SNAPKIT_URL": f"http://127.0.0.1:{_closed_port()}",
        "SNAPKIT_TOKEN": "snk_x",
        "SNAPKIT_CONFIG": os.devnull,
    }
    args = [sys.executable, "-m", "snapkit", *(["-v"] if verbose else []), "ls"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 8
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[-1].startswith("snapkit: error: cannot reach server http://")
    if verbose:
        assert len([line for line in lines if "retrying" in line]) == 3
        assert all(line.startswith("snapkit: INFO: ") for line in lines[:-1])
    else:
        assert len(lines) == 1


BAD_IDS = ["../../x", "abc", "abcd/../../me", "zzzz", "a" * 65, "abcd?x=1"]


@pytest.mark.parametrize("given", BAD_IDS)
def test_bad_snapshot_ids_never_reach_the_server(given: str) -> None:
    with FlakyServer() as flaky:
        with Client(flaky.url, "snk_x", progress=False) as client:
            for call in (client.snapshot, client.remove_snapshot, client.get_snapshot):
                with pytest.raises(UsageError, match="4 to 64 hex digits"):
                    call(given)
            with pytest.raises(UsageError, match="64 lowercase hex"):
                client.get_raw(given)
        assert flaky.requests == 0


@pytest.mark.parametrize("command", ["pull", "rm"])
def test_cli_refuses_a_path_for_an_id(command: str) -> None:
    """`snapkit pull ../../x` is a usage error (exit 2) naming the value."""
    with FlakyServer() as flaky:
        env = {
            **os.environ,
            "SNAPKIT_URL": flaky.url,
            "SNAPKIT_TOKEN": "snk_x",
            "SNAPKIT_CONFIG": os.devnull,
        }
        done = subprocess.run(
            [sys.executable, "-m", "snapkit", command, "../../x"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert flaky.requests == 0
    assert done.returncode == 2
    assert done.stderr == (
        "snapkit: error: snapshot id '../../x' is not valid; give 4 to 64 hex "
        "digits of an id listed by `snapkit ls`\n"
    )


_ABORT_WHILE_UPLOADING = """
import os, socket, sys, threading
from snapkit.remote.client import Client
from snapkit.store.repository import StoredBlob

# A server that takes the connection and never answers.
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(8)
held = []
accept = lambda: held.extend(iter(srv.accept, None))  # noqa: E731
threading.Thread(target=accept, daemon=True).start()
client = Client(f"http://127.0.0.1:{srv.getsockname()[1]}", "snk_a_b",
                progress=False, timeout=600, batch_bytes=1000)
client.put_raw(StoredBlob.from_bytes(os.urandom(2000)))
client.put_raw(StoredBlob.from_bytes(os.urandom(2000)))  # the first batch leaves
client.abort()
print("aborted")
"""


def test_abort_does_not_wait_for_an_upload_stuck_on_a_silent_server() -> None:
    """Ctrl-C during a push calls abort(): it must return, and the process
    exit, while an upload is blocked on a server that never answers (the
    request's own timeout here is 600 s)."""
    child = subprocess.run(
        [sys.executable, "-c", _ABORT_WHILE_UPLOADING],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "aborted"
