"""login, push, ls, pull and rm against a real server."""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

from click.testing import CliRunner

from snapkit import capture
from snapkit.cli import main
from snapkit.remote.config import config_path, load_config
from snapkit.server import EmbeddedServer


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_login_push_ls_pull_rm(
    tmp_path: Path, server: EmbeddedServer, token: str
) -> None:
    """The whole remote round trip from the command line."""
    code, out, _ = _run("login", server.url, "--token", token)
    assert code == 0, out
    assert "as alice" in out
    assert stat.S_IMODE(config_path().stat().st_mode) == 0o600
    assert load_config().token == token

    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "a.bin").write_bytes(os.urandom(10_000))
    snap = capture(
        files=tmp_path / "ws", name="cli", tags=["t"], to=tmp_path / "a.snap"
    )

    code, out, _ = _run("push", str(tmp_path / "a.snap"), "--json")
    assert code == 0
    pushed = json.loads(out)
    assert pushed["snapshots"][0]["id"] == snap.id
    assert pushed["snapshots"][0]["blobs_sent"] > 0

    code, out, _ = _run("ls", "--json", "--tag", "t")
    assert [s["id"] for s in json.loads(out)] == [snap.id]
    code, out, _ = _run("ls")
    assert snap.id[:12] in out and "cli [t]" in out

    target = tmp_path / "pulled.snap"
    code, out, _ = _run("pull", snap.id[:8], "-o", str(target))
    assert code == 0 and target.exists()

    code, out, _ = _run("rm", snap.id[:8])
    assert code == 0 and snap.id in out
    code, out, err = _run("rm", snap.id[:8])
    assert code == 4
    assert "no snapshot" in err


def test_login_with_a_bad_token_fails_and_saves_nothing(
    server: EmbeddedServer,
) -> None:
    code, _, err = _run("login", server.url, "--token", "snk_wrong")
    assert code == 8
    assert "snapkit login" in err
    assert not config_path().exists()


def test_adduser_prints_a_working_token(tmp_path: Path) -> None:
    data = tmp_path / "data"
    code, out, _ = _run("server", "adduser", "dana", "--data", str(data))
    assert code == 0
    token = out.strip()
    assert token.startswith("snk_")
    with EmbeddedServer(data) as running:
        code, out, _ = _run("login", running.url, "--token", token)
        assert code == 0 and "as dana" in out


def test_ls_since_takes_times_with_offsets_and_refuses_the_rest(
    tmp_path: Path, server: EmbeddedServer, token: str
) -> None:
    """`ls --since` converts an offset to UTC; a value that is no time is a
    usage error (exit 2) naming it, before any request."""
    assert _run("login", server.url, "--token", token)[0] == 0
    (tmp_path / "ws").mkdir()
    snap = capture(files=tmp_path / "ws", name="late", to=tmp_path / "a.snap")
    assert _run("push", str(tmp_path / "a.snap"))[0] == 0
    created = snap.manifest.created  # e.g. 2026-12-03T20:06:17.123456Z
    moment = datetime.fromisoformat(created[:-1]).replace(tzinfo=timezone.utc)
    ahead = moment.astimezone(timezone(timedelta(hours=1))).isoformat()
    code, out, _ = _run("ls", "--json", "--since", ahead)
    assert code == 0 and [s["id"] for s in json.loads(out)] == [snap.id]
    later = (moment + timedelta(seconds=1)).astimezone(timezone(timedelta(hours=1)))
    code, out, _ = _run("ls", "--json", "--since", later.isoformat())
    assert code == 0 and json.loads(out) == []

    code, out, err = _run("ls", "--since", "yesterday")
    assert code == 2 and out == ""
    assert err.startswith("snapkit: error: --since: time 'yesterday' is not an ISO")
    assert len(err.splitlines()) == 1
