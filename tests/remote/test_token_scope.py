"""A saved token goes only to the server it was saved for."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from snapkit.errors import ConfigError
from snapkit.remote.client import Client
from snapkit.remote.config import save_config
from snapkit.server import EmbeddedServer


@pytest.fixture
def other(tmp_path: Path) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(tmp_path / "other") as running:
        yield running


def test_saved_token_is_not_sent_to_another_url(
    server: EmbeddedServer,
    other: EmbeddedServer,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Logged in to one server, a client for the other gets no token (and
    says which URL the saved login is for) instead of sending it there."""
    save_config(server.url, token)
    # The other server would accept the token if it knew it: it does not.
    with pytest.raises(ConfigError, match=f"saved login is for {server.url}"):
        Client(other.url, progress=False)
    monkeypatch.setenv("SNAPKIT_URL", other.url)
    with pytest.raises(ConfigError, match=f"no token for {other.url}"):
        Client(progress=False)

    # The same server spelled differently still gets it.
    spelled = "HTTP://" + server.url.removeprefix("http://") + "/"
    with Client(spelled, progress=False) as client:
        assert client.url == server.url and client.whoami() == "alice"
    monkeypatch.delenv("SNAPKIT_URL")
    with Client(progress=False) as saved:
        assert saved.url == server.url and saved.whoami() == "alice"


def test_explicit_token_goes_to_any_url(
    other: EmbeddedServer, token: str, server: EmbeddedServer
) -> None:
    """A token given outright is the caller's choice: it is used as given."""
    save_config(server.url, token)
    bob = other.add_user("bob")
    with Client(other.url, bob, progress=False) as client:
        assert client.whoami() == "bob"
