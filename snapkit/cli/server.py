"""``snapkit server serve|adduser|gc``: run the snapshot server, add users,
collect garbage."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from snapkit.cli._common import echo_json, human_size, json_option
from snapkit.errors import NotFoundError, UsageError
from snapkit.server import listen_socket

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
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to bind (0: any free port).",
)
@data_option
@click.option(
    "--max-body",
    default=64,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="Largest blob upload body, in MiB.",
)
def serve(host: str, port: int, data: Path | None, max_body: int) -> None:
    """Serve the HTTP API (under /api/v1, docs at /docs) until interrupted.

    Exits 2 when the address cannot be bound (the port is busy, or the host
    is not an address of this machine): pass another --port or --host.
    """
    _need_server_extra()
    import uvicorn

    from snapkit.server.app import ServerConfig, create_app
    from snapkit.server.gc import data_lock

    config = ServerConfig(data=data or default_data_dir(), max_body=max_body << 20)
    # One process writes the pack store: not two servers, not a server and
    # the pack step of `snapkit server gc`.
    with data_lock(config.data) as locked:
        if not locked:
            raise UsageError(
                f"{config.data} is in use by another `snapkit server serve` or "
                "`snapkit server gc`; stop it or give another --data folder"
            )
        sock = listen_socket(host, port)
        try:
            app = create_app(config)
            bound = sock.getsockname()[1]
            click.echo(
                f"snapkit server on http://{host}:{bound} (data in {config.data}); "
                "add users with `snapkit server adduser NAME`",
                err=True,
            )
            server = uvicorn.Server(uvicorn.Config(app, log_level="info"))
            server.run(sockets=[sock])
        finally:
            sock.close()


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


@command.command("gc")
@data_option
@click.option(
    "--grace",
    default="1h",
    show_default=True,
    help="Keep blobs uploaded more recently than this (s, m, h, d), so pushes "
    "under way are not disturbed.",
)
@click.option(
    "--dry-run", is_flag=True, help="Report what would be removed; change nothing."
)
@json_option
def gc(data: Path | None, grace: str, dry_run: bool, as_json: bool) -> None:
    """Remove blobs no snapshot names any more, for every user.

    Ownership of blobs that none of a user's snapshots names and that were
    uploaded longer ago than --grace is dropped; then blobs nobody owns are
    removed from the packs. The first step is safe while the server runs (a
    push that loses its blobs is told so at commit and uploads them again);
    the second needs the server stopped and is skipped, with a note, while
    it runs. There is no HTTP route for this on purpose.
    """
    from snapkit.server.gc import collect_server_garbage, data_lock, parse_duration
    from snapkit.server.metadata import open_metadata
    from snapkit.server.storage import FormFiles
    from snapkit.store.local import LocalStore

    period = parse_duration(grace)
    folder = data or default_data_dir()
    if not (folder / "metadata.sqlite3").exists():
        raise NotFoundError(
            f"{folder} holds no server data; give the folder `snapkit server "
            "serve --data` uses"
        )
    meta = open_metadata(folder)
    try:
        with data_lock(folder) as locked:
            store = forms = None
            if locked and (folder / "packs" / "snapkit-store").exists():
                store = LocalStore(folder / "packs", create=False)
            if locked and (folder / "forms").is_dir():
                forms = FormFiles(folder / "forms")
            try:
                report = collect_server_garbage(
                    meta, store, forms=forms, grace=period, dry_run=dry_run
                )
            finally:
                if store is not None:
                    store.close()
            if not locked:
                report.note = (
                    "packs not compacted: a server is running on this data "
                    "folder; stop it and run again to free disk space"
                )
    finally:
        meta.close()
    if as_json:
        echo_json({"data": str(folder), **report.to_dict()})
        return
    verb = "would drop" if dry_run else "dropped"
    click.echo(
        f"{verb} {report.ownership_removed} ownership rows of "
        f"{len(report.users)} users (uploaded before {report.recorded_before} "
        "and named by none of their snapshots)"
    )
    if report.store is not None:
        packs = report.store
        freed = "would free about" if dry_run else "freed"
        click.echo(
            f"packs: {packs.blobs_removed} blobs nobody owns "
            f"{'would go' if dry_run else 'removed'} ({packs.packs_rewritten} "
            f"rewritten, {packs.packs_deleted} deleted), {freed} "
            f"{human_size(packs.bytes_freed)}"
        )
    if report.forms_removed:
        click.echo(
            f"form files: {report.forms_removed} nobody uploads any more "
            f"{'would go' if dry_run else 'removed'} "
            f"({human_size(report.form_bytes_freed)})"
        )
    if report.note:
        click.echo(f"note: {report.note}", err=True)
