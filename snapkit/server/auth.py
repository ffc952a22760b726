"""API tokens: issued once, stored only as hashes, compared in constant time.

A token reads ``snk_<id>_<secret>``. The ``id`` part is not secret: it is the
database key, so checking a token is one indexed lookup rather than a scan
that compares the secret against every row. Only the SHA-256 of the secret is
stored, and it is compared with :func:`hmac.compare_digest`. An unknown id is
still compared against a fixed dummy hash so that a wrong id and a wrong
secret take the same path.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from snapkit.errors import UsageError
from snapkit.server.metadata import Metadata

__all__ = ["PREFIX", "User", "authenticate", "issue_token", "parse_token"]

PREFIX = "snk_"
_SECRET_BYTES = 32
_TOKEN = re.compile(r"snk_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})")
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_DUMMY_HASH = hashlib.sha256(b"snapkit: no such token").digest()


@dataclass(frozen=True)
class User:
    """The authenticated caller of a request."""

    id: int
    name: str


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def _new_token_id() -> str:
    # Alphanumeric only, so "_" stays an unambiguous separator.
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(12))


def parse_token(token: str) -> tuple[str, str] | None:
    """Split a token into ``(id, secret)``; None if it is not shaped like one."""
    match = _TOKEN.fullmatch(token.strip())
    if match is None:
        return None
    return match.group(1), match.group(2)


def issue_token(meta: Metadata, user_name: str) -> str:
    """Create the user if needed and return a new token for them.

    The token is returned once and never stored in the clear.
    """
    if not _USER_NAME.fullmatch(user_name):
        raise UsageError(
            f"user name {user_name!r} is not valid; use 1-64 letters, digits, "
            "'.', '_', '@' or '-', starting with a letter or digit"
        )
    user_id = meta.add_user(user_name)
    token_id = _new_token_id()
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    meta.add_token(user_id, token_id, _hash(secret))
    return f"{PREFIX}{token_id}_{secret}"


def authenticate(meta: Metadata, token: str) -> User | None:
    """Return the user a token belongs to, or None for any bad token."""
    parts = parse_token(token)
    if parts is None:
        return None
    token_id, secret = parts
    row = meta.token(token_id)
    expected = row.secret_hash if row is not None else _DUMMY_HASH
    if not hmac.compare_digest(_hash(secret), expected) or row is None:
        return None
    return User(row.user_id, row.user_name)
