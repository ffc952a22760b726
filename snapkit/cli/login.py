"""``snapkit login URL``: check a token against a server and save both."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from snapkit.cli._common import echo_json, json_option
from snapkit.errors import UsageError

if TYPE_CHECKING:
    from snapkit.remote.client import Client

__all__ = ["command", "connect"]


def connect(progress: bool = False) -> Client:
    """Return a client for the server from ``snapkit login`` or the environment."""
    try:
        from snapkit.remote.client import Client
    except ImportError as exc:
        raise UsageError(
            "talking to a server needs the client extra: pip install 'snapkit[client]'"
        ) from exc
    return Client(progress=progress)


@click.command("login")
@click.argument("url")
@click.option(
    "--token",
    envvar="SNAPKIT_TOKEN",
    default=None,
    help="API token from `snapkit server adduser` (prompted for if absent).",
)
@json_option
def command(url: str, token: str | None, as_json: bool) -> None:
    """Log in to the snapkit server at URL.

    The token is checked with the server first, then saved with the URL in
    the config file (mode 0600) that push, pull, ls and rm read.
    """
    try:
        from snapkit.remote.client import Client
        from snapkit.remote.config import save_config
    except ImportError as exc:
        raise UsageError(
            "logging in needs the client extra: pip install 'snapkit[client]'"
        ) from exc
    if not token:
        token = click.prompt("Token", hide_input=True, err=True).strip()
    with Client(url, token, progress=False) as client:
        user = client.whoami()
        url = client.url
    path = save_config(url, str(token))
    if as_json:
        echo_json({"url": url, "user": user, "config": str(path)})
    else:
        click.echo(f"logged in to {url} as {user} (saved in {path})")
