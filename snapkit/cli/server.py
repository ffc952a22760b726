"""``snapkit server serve|adduser``: run the snapshot server, add users."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from snapkit.cli._common import echo_json, json_option
from snapkit.errors import UsageError

__all__ = ["command", "default_data_dir"]


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/snapkit/server``, else ``~/.local/share/snapkit/server``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "snapkit" / "server"


def _need_server_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            f"the server needs {exc.name}, which is not installed; "
            "run: pip install 'snapkit[server]'"
        ) from exc


data_option = click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SNAPKIT_SERVER_DATA",
    default=None,
    help="Folder of the metadata database and packs "
    "[env SNAPKIT_SERVER_DATA; default ~/.local/share/snapkit/server].",
)


@click.group("server")
def command() -> None:
    """Run a snapkit server: a repository shared by users who each see only
    their own snapshots."""


@command.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port to bind.")
@data_option
@click.option(
    "--max-body",
    default=64,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="Largest blob upload body, in MiB.",
)
def serve(host: str, port: int, data: Path | None, max_body: int) -> None:
    """Serve the HTTP API (under /api/v1, docs at /docs) until interrupted."""
    _need_server_extra()
    import uvicorn

    from snapkit.server.app import ServerConfig, create_app

    config = ServerConfig(data=data or default_data_dir(), max_body=max_body << 20)
    app = create_app(config)
    click.echo(
        f"snapkit server on http://{host}:{port} (data in {config.data}); "
        "add users with `snapkit server adduser NAME`",
        err=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="info")


@command.command("adduser")
@click.argument("name")
@data_option
@json_option
def adduser(name: str, data: Path | None, as_json: bool) -> None:
    """Create user NAME (if new) and print a new token for them, once.

    The server keeps only a hash of the token: store it now, then run
    `snapkit login URL` on the user's machine.
    """
    from snapkit.server.auth import issue_token
    from snapkit.server.metadata import open_metadata

    folder = data or default_data_dir()
    meta = open_metadata(folder)
    try:
        token = issue_token(meta, name)
    finally:
        meta.close()
    if as_json:
        echo_json({"user": name, "token": token})
        return
    click.echo(token)
    if sys.stderr.isatty():
        click.echo(
            f"token for {name} (shown once; the server keeps only its hash). "
            "Use it with: snapkit login URL --token TOKEN",
            err=True,
        )
