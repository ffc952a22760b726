"""Where the client finds its server URL and token.

Order: explicit arguments, then ``SNAPKIT_URL`` / ``SNAPKIT_TOKEN``, then the
config file that ``snapkit login`` writes. The file's token is used only for
the URL it was saved with (compared after :func:`normalise_url`), never sent
to another server. The file is
``$SNAPKIT_CONFIG``, else ``$XDG_CONFIG_HOME/snapkit/config.toml``, else
``~/.config/snapkit/config.toml``. It holds two TOML lines, ``url = "..."``
and ``token = "..."``, and is written with mode 0600 because the token is a
password.
"""

from __future__ import annotations

import os
import re
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snapkit.errors import ConfigError

__all__ = [
    "RemoteConfig",
    "config_path",
    "load_config",
    "normalise_url",
    "save_config",
]

_DEFAULT_PORTS = {"http": 80, "https": 443}

_LINE = re.compile(r'\s*([A-Za-z_]+)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:#.*)?')


@dataclass(frozen=True)
class RemoteConfig:
    """A server URL and token; either may be missing."""

    url: str | None = None
    token: str | None = None


def normalise_url(url: str) -> str:
    """Return the one spelling of a server URL: lower-case scheme and host,
    no default port, no trailing slash. Raises ConfigError for anything that
    is not a plain http(s) URL (credentials, a query or a fragment in it).
    """
    text = url.strip()
    parts = urllib.parse.urlsplit(text)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"server URL {url!r} has an invalid port") from exc
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ConfigError(
            f"server URL {url!r} should look like http://HOST:PORT or "
            "https://HOST (http:// or https:// and a host name)"
        )
    if parts.username is not None or parts.query or parts.fragment:
        raise ConfigError(
            f"server URL {url!r} should hold no user name, query or fragment; "
            "give the token with --token or SNAPKIT_TOKEN"
        )
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return f"{scheme}://{host}{parts.path.rstrip('/')}"


def config_path() -> Path:
    """Return the path of the login config file (it may not exist)."""
    explicit = os.environ.get("SNAPKIT_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "snapkit" / "config.toml"


def _parse(text: str, where: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"config file {where} is not valid TOML ({exc}); fix it or run "
                "`snapkit login URL` again"
            ) from exc
    return _parse_lines(text, where)


def _parse_lines(text: str, where: Path) -> dict[str, Any]:
    """Read ``key = "value"`` lines: all Python 3.10 (no tomllib) needs."""
    values: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise ConfigError(
                f'config file {where} line {number} is not `key = "value"`; '
                "fix it or run `snapkit login URL` again"
            )
        values[match.group(1)] = re.sub(r"\\(.)", r"\1", match.group(2))
    return values


def load_config(path: Path | None = None) -> RemoteConfig:
    """Read the config file; a missing file is an empty config."""
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return RemoteConfig()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    values = _parse(text, path)
    url, token = values.get("url"), values.get("token")
    for key, value in (("url", url), ("token", token)):
        if value is not None and not isinstance(value, str):
            raise ConfigError(
                f"config file {path}: {key} should be a string, is {value!r}"
            )
    return RemoteConfig(url, token)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def save_config(url: str, token: str, path: Path | None = None) -> Path:
    """Write the config file with mode 0600 (replacing it); return its path."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = f"url = {_quote(url)}\ntoken = {_quote(token)}\n"
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path
