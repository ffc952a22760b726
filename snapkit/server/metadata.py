"""The server's metadata: users, tokens, blob ownership and snapshots.

Blob *content* lives in the shared storage (:mod:`.storage`); this database
records who may reach it and, per user, the form that user uploaded (codec,
stored size and the SHA-256 of the stored bytes, :class:`BlobForm`), so every
answer about a blob derives from the caller's own upload. Every query that
touches a blob or a snapshot is scoped to one user, so another user's rows
are invisible by construction rather than by a check that could be
forgotten.

:class:`Metadata` is the interface the app uses; :class:`SQLiteMetadata` is
the embedded implementation (WAL journal, ``synchronous=FULL`` so a commit
that returned survives a power cut). A PostgreSQL implementation only needs
the same methods.

Ordering contract (promise "nothing half-written"): callers record blob
ownership only after the blob is durable in storage, and
:meth:`Metadata.add_snapshot` re-checks ownership of every blob inside the
same transaction that inserts the snapshot.

Garbage collection (:mod:`.gc`) deletes ownership rows that none of their
user's snapshots names and that were recorded before a cutoff, in one
transaction (:meth:`Metadata.collect_blobs`), so it never interleaves with a
commit: a push whose blobs were collected first gets 409 at commit. Which
blobs a snapshot names is kept in ``snapshot_blobs`` for that purpose (and so
an archive download finds all its forms in one query).
"""

from __future__ import annotations

import abc
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from snapkit.errors import UsageError
from snapkit.remote import parse_time

__all__ = [
    "BlobForm",
    "CollectedBlob",
    "Metadata",
    "SQLiteMetadata",
    "SnapshotRow",
    "TokenRow",
    "open_metadata",
]

#: SQLite limits host parameters per statement; stay well under the default.
_BATCH = 500


@dataclass(frozen=True)
class TokenRow:
    """A stored token: its public id, owner, and the SHA-256 of its secret."""

    token_id: str
    user_id: int
    user_name: str
    secret_hash: bytes


@dataclass(frozen=True)
class SnapshotRow:
    """One user's snapshot as listed, without its manifest bytes."""

    id: str
    name: str
    created: str
    tags: list[str]
    raw_size: int
    objects: int
    files: int
    committed: str


@dataclass(frozen=True)
class BlobForm:
    """How one user's copy of a blob is stored: the form that user uploaded.

    ``digest`` is the hex SHA-256 of the stored bytes (not of the content:
    the id is that). It and ``codec`` are None only for rows recorded before
    forms were kept (schema version 1); those are served the pack store's
    copy, as they were then.
    """

    codec: int | None
    stored_size: int
    digest: str | None


@dataclass(frozen=True)
class CollectedBlob:
    """An ownership row garbage collection removed (or would remove)."""

    user_id: int
    user_name: str
    blob_id: str
    stored_size: int
    #: The form digest the row recorded (None for a version-1 row).
    digest: str | None = None


class Metadata(abc.ABC):
    """What the app needs from a metadata database."""

    # -- users and tokens --------------------------------------------------

    @abc.abstractmethod
    def add_user(self, name: str) -> int:
        """Create a user (or return the existing one's id)."""

    @abc.abstractmethod
    def add_token(self, user_id: int, token_id: str, secret_hash: bytes) -> None:
        """Record a token by its public id and the hash of its secret."""

    @abc.abstractmethod
    def token(self, token_id: str) -> TokenRow | None:
        """Return the token with this public id, or None."""

    # -- blobs -------------------------------------------------------------

    @abc.abstractmethod
    def owned_sizes(self, user_id: int, ids: Sequence[str]) -> dict[str, int]:
        """Return the stored size of each of ``ids`` that the user owns."""

    @abc.abstractmethod
    def owned_forms(self, user_id: int, ids: Sequence[str]) -> dict[str, BlobForm]:
        """Return the form the user uploaded of each of ``ids`` they own."""

    @abc.abstractmethod
    def snapshot_forms(self, user_id: int, snapshot_id: str) -> dict[str, BlobForm]:
        """Return the user's form of every blob their snapshot names, at once.

        Empty for a snapshot the user does not have; a blob they do not own
        is absent (commit makes sure there is none).
        """

    @abc.abstractmethod
    def add_blobs(self, user_id: int, forms: dict[str, BlobForm]) -> None:
        """Record ownership of durable blobs, all in one transaction.

        Recording a blob the user owns already renews its ``recorded`` time,
        which restarts its garbage-collection grace period, and records the
        form of this latest upload.
        """

    @abc.abstractmethod
    def collect_blobs(
        self, recorded_before: str, *, dry_run: bool = False
    ) -> list[CollectedBlob]:
        """Delete every ownership row that no snapshot of its user names and
        that was recorded before ``recorded_before`` (ISO time, UTC, ``Z``).

        One transaction, so it is atomic with respect to
        :meth:`add_snapshot`. ``dry_run`` returns the rows without deleting.
        """

    @abc.abstractmethod
    def owner_counts(self, ids: Sequence[str]) -> dict[str, int]:
        """How many users own each of ``ids`` (ids nobody owns are absent).

        For garbage collection only: it answers across users, so no route
        may expose it.
        """

    @abc.abstractmethod
    def form_counts(
        self, pairs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], int]:
        """How many users' rows record each ``(blob id, form digest)`` pair
        (pairs nobody records are absent).

        For garbage collection only: it answers across users.
        """

    # -- snapshots ---------------------------------------------------------

    @abc.abstractmethod
    def add_snapshot(
        self, user_id: int, row: SnapshotRow, manifest: bytes, blob_ids: set[str]
    ) -> list[str]:
        """Insert a snapshot if the user owns every blob in ``blob_ids``.

        Returns the sorted ids the user does not own (and inserts nothing)
        when there are any. Inserting an existing snapshot again is a no-op.
        """

    @abc.abstractmethod
    def snapshot_ids(self, user_id: int, prefix: str) -> list[str]:
        """Return up to a few of the user's snapshot ids starting with ``prefix``."""

    @abc.abstractmethod
    def snapshot(self, user_id: int, snapshot_id: str) -> SnapshotRow | None:
        """Return one of the user's snapshots by full id."""

    @abc.abstractmethod
    def manifest(self, user_id: int, snapshot_id: str) -> bytes | None:
        """Return the manifest bytes of one of the user's snapshots."""

    @abc.abstractmethod
    def list_snapshots(
        self,
        user_id: int,
        *,
        name: str | None = None,
        tag: str | None = None,
        since: str | None = None,
        after: tuple[str, str] | None = None,
        limit: int = 100,
    ) -> list[SnapshotRow]:
        """Return the user's snapshots oldest first.

        ``after`` is the ``(created, id)`` of the last row of the previous
        page; ``since`` keeps snapshots created at or after a time given in
        the form :func:`snapkit.remote.parse_time` returns (UTC, ``Z``),
        compared with each snapshot's ``created`` converted the same way.
        """

    @abc.abstractmethod
    def remove_snapshot(self, user_id: int, snapshot_id: str) -> bool:
        """Delete one of the user's snapshots; return whether it existed."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; safe to call twice."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id       INTEGER PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE,
    created  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    token_id     TEXT PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id),
    secret_hash  BLOB NOT NULL,
    created      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (
    user_id      INTEGER NOT NULL REFERENCES users(id),
    blob_id      TEXT NOT NULL,
    stored_size  INTEGER NOT NULL,
    recorded     TEXT NOT NULL,
    codec        INTEGER,
    form         TEXT,
    PRIMARY KEY (user_id, blob_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshots (
    user_id    INTEGER NOT NULL REFERENCES users(id),
    id         TEXT NOT NULL,
    name       TEXT NOT NULL,
    created    TEXT NOT NULL,
    tags       TEXT NOT NULL,
    raw_size   INTEGER NOT NULL,
    objects    INTEGER NOT NULL,
    files      INTEGER NOT NULL,
    committed  TEXT NOT NULL,
    manifest   BLOB NOT NULL,
    created_utc TEXT,
    PRIMARY KEY (user_id, id)
);
CREATE INDEX IF NOT EXISTS snapshots_by_time ON snapshots (user_id, created, id);
CREATE TABLE IF NOT EXISTS snapshot_blobs (
    user_id      INTEGER NOT NULL,
    snapshot_id  TEXT NOT NULL,
    blob_id      TEXT NOT NULL,
    PRIMARY KEY (user_id, blob_id, snapshot_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS snapshot_blobs_by_snapshot
    ON snapshot_blobs (user_id, snapshot_id);
CREATE TABLE IF NOT EXISTS snapshot_tags (
    user_id      INTEGER NOT NULL,
    snapshot_id  TEXT NOT NULL,
    tag          TEXT NOT NULL,
    PRIMARY KEY (user_id, tag, snapshot_id)
) WITHOUT ROWID;
"""

_COLUMNS = "id, name, created, tags, raw_size, objects, files, committed"
#: 1: snapshot_blobs lists the blobs of every snapshot.
#: 2: blobs record each user's own form (codec, form); snapshots a UTC
#:    ``created_utc`` that ``since`` compares with.
_SCHEMA_VERSION = 2


def created_key(created: str) -> str:
    """``created`` as the UTC form ``since`` is compared in (itself if unparsable)."""
    try:
        return parse_time(created)
    except UsageError:
        return created


def _backfill_snapshot_blobs(db: sqlite3.Connection) -> None:
    """Fill ``snapshot_blobs`` for snapshots committed before it existed."""
    from snapkit.workspace.manifest import Manifest

    found = db.execute("SELECT user_id, id, manifest FROM snapshots").fetchall()
    for user_id, sid, data in found:
        ids = Manifest.decode(bytes(data), f"snapshot {sid}").blob_ids()
        db.executemany(
            "INSERT OR IGNORE INTO snapshot_blobs (user_id, snapshot_id, blob_id) "
            "VALUES (?, ?, ?)",
            [(user_id, sid, bid) for bid in ids],
        )


def _add_forms_and_utc_times(db: sqlite3.Connection) -> None:
    """Version 2: add the columns a version-1 database lacks, fill the times.

    Ownership rows of version 1 keep a NULL form: they were served the pack
    store's copy, and still are.
    """
    columns = {row[1] for row in db.execute("PRAGMA table_info(blobs)")}
    for column, kind in (("codec", "INTEGER"), ("form", "TEXT")):
        if column not in columns:
            db.execute(f"ALTER TABLE blobs ADD COLUMN {column} {kind}")
    columns = {row[1] for row in db.execute("PRAGMA table_info(snapshots)")}
    if "created_utc" not in columns:
        db.execute("ALTER TABLE snapshots ADD COLUMN created_utc TEXT")
    found = db.execute(
        "SELECT user_id, id, created FROM snapshots WHERE created_utc IS NULL"
    ).fetchall()
    db.executemany(
        "UPDATE snapshots SET created_utc = ? WHERE user_id = ? AND id = ?",
        [(created_key(str(c)), uid, sid) for uid, sid, c in found],
    )


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _BATCH):
        yield items[start : start + _BATCH]


def _form(size: int, kind: int | None, form: str | None) -> BlobForm:
    """A ``blobs`` row's form; codec and digest are NULL in rows of schema 1."""
    return BlobForm(
        None if kind is None else int(kind),
        int(size),
        None if form is None else str(form),
    )


def _row(values: Sequence[object]) -> SnapshotRow:
    sid, name, created, tags, raw, objects, files, committed = values
    return SnapshotRow(
        id=str(sid),
        name=str(name),
        created=str(created),
        tags=list(json.loads(str(tags))),
        raw_size=int(str(raw)),
        objects=int(str(objects)),
        files=int(str(files)),
        committed=str(committed),
    )


class SQLiteMetadata(Metadata):
    """Metadata in one SQLite file, safe to share between threads.

    One connection serialised by a lock: the embedded server is one process
    and every statement is short, so a pool would buy little.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=10000")
        with self._transaction() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            (version,) = db.execute("PRAGMA user_version").fetchone()
            if version < 1:
                _backfill_snapshot_blobs(db)
            if version < 2:
                _add_forms_and_utc_times(db)
            if version < _SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._db is None:
                raise RuntimeError(f"metadata database {self.path} is closed")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- users and tokens --------------------------------------------------

    def add_user(self, name: str) -> int:
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO users (name, created) VALUES (?, ?)",
                (name, _now()),
            )
            (user_id,) = db.execute(
                "SELECT id FROM users WHERE name = ?", (name,)
            ).fetchone()
        return int(user_id)

    def add_token(self, user_id: int, token_id: str, secret_hash: bytes) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO tokens (token_id, user_id, secret_hash, created) "
                "VALUES (?, ?, ?, ?)",
                (token_id, user_id, secret_hash, _now()),
            )

    def token(self, token_id: str) -> TokenRow | None:
        with self._transaction() as db:
            found = db.execute(
                "SELECT t.token_id, t.user_id, u.name, t.secret_hash "
                "FROM tokens t JOIN users u ON u.id = t.user_id "
                "WHERE t.token_id = ?",
                (token_id,),
            ).fetchone()
        if found is None:
            return None
        return TokenRow(str(found[0]), int(found[1]), str(found[2]), bytes(found[3]))

    # -- blobs -------------------------------------------------------------

    def owned_sizes(self, user_id: int, ids: Sequence[str]) -> dict[str, int]:
        sizes: dict[str, int] = {}
        with self._transaction() as db:
            for part in _chunks(ids):
                marks = ",".join("?" * len(part))
                sizes.update(
                    db.execute(
                        "SELECT blob_id, stored_size FROM blobs "
                        f"WHERE user_id = ? AND blob_id IN ({marks})",
                        (user_id, *part),
                    ).fetchall()
                )
        return sizes

    def owned_forms(self, user_id: int, ids: Sequence[str]) -> dict[str, BlobForm]:
        forms: dict[str, BlobForm] = {}
        with self._transaction() as db:
            for part in _chunks(ids):
                marks = ",".join("?" * len(part))
                for bid, size, kind, form in db.execute(
                    "SELECT blob_id, stored_size, codec, form FROM blobs "
                    f"WHERE user_id = ? AND blob_id IN ({marks})",
                    (user_id, *part),
                ):
                    forms[str(bid)] = _form(size, kind, form)
        return forms

    def snapshot_forms(self, user_id: int, snapshot_id: str) -> dict[str, BlobForm]:
        with self._transaction() as db:
            found = db.execute(
                "SELECT b.blob_id, b.stored_size, b.codec, b.form "
                "FROM snapshot_blobs s JOIN blobs b "
                "ON b.user_id = s.user_id AND b.blob_id = s.blob_id "
                "WHERE s.user_id = ? AND s.snapshot_id = ?",
                (user_id, snapshot_id),
            ).fetchall()
        return {str(bid): _form(size, kind, form) for bid, size, kind, form in found}

    def add_blobs(self, user_id: int, forms: dict[str, BlobForm]) -> None:
        now = _now()
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO blobs "
                "(user_id, blob_id, stored_size, recorded, codec, form) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, blob_id) "
                "DO UPDATE SET recorded = excluded.recorded, "
                "stored_size = excluded.stored_size, codec = excluded.codec, "
                "form = excluded.form",
                [
                    (user_id, bid, f.stored_size, now, f.codec, f.digest)
                    for bid, f in forms.items()
                ],
            )

    def collect_blobs(
        self, recorded_before: str, *, dry_run: bool = False
    ) -> list[CollectedBlob]:
        # Not named by any snapshot of the row's own user, and old enough.
        unreferenced = (
            "b.recorded < ? AND NOT EXISTS (SELECT 1 FROM snapshot_blobs s "
            "WHERE s.user_id = b.user_id AND s.blob_id = b.blob_id)"
        )
        with self._transaction() as db:
            found = db.execute(
                "SELECT b.user_id, u.name, b.blob_id, b.stored_size, b.form "
                f"FROM blobs b JOIN users u ON u.id = b.user_id WHERE {unreferenced} "
                "ORDER BY b.user_id, b.blob_id",
                (recorded_before,),
            ).fetchall()
            if not dry_run:
                db.execute(
                    f"DELETE FROM blobs AS b WHERE {unreferenced}", (recorded_before,)
                )
        return [
            CollectedBlob(
                int(uid), str(name), str(bid), int(size), None if f is None else str(f)
            )
            for uid, name, bid, size, f in found
        ]

    def owner_counts(self, ids: Sequence[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._transaction() as db:
            for part in _chunks(ids):
                marks = ",".join("?" * len(part))
                counts.update(
                    (str(bid), int(n))
                    for bid, n in db.execute(
                        "SELECT blob_id, COUNT(*) FROM blobs "
                        f"WHERE blob_id IN ({marks}) GROUP BY blob_id",
                        tuple(part),
                    )
                )
        return counts

    def form_counts(
        self, pairs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], int]:
        wanted = set(pairs)
        counts: dict[tuple[str, str], int] = {}
        with self._transaction() as db:
            for part in _chunks(sorted({bid for bid, _ in wanted})):
                marks = ",".join("?" * len(part))
                for bid, form, n in db.execute(
                    "SELECT blob_id, form, COUNT(*) FROM blobs WHERE form IS NOT "
                    f"NULL AND blob_id IN ({marks}) GROUP BY blob_id, form",
                    tuple(part),
                ):
                    if (str(bid), str(form)) in wanted:
                        counts[str(bid), str(form)] = int(n)
        return counts

    # -- snapshots ---------------------------------------------------------

    def add_snapshot(
        self, user_id: int, row: SnapshotRow, manifest: bytes, blob_ids: set[str]
    ) -> list[str]:
        wanted = sorted(blob_ids)
        with self._transaction() as db:
            owned: set[str] = set()
            for part in _chunks(wanted):
                marks = ",".join("?" * len(part))
                owned.update(
                    bid
                    for (bid,) in db.execute(
                        f"SELECT blob_id FROM blobs WHERE user_id = ? "
                        f"AND blob_id IN ({marks})",
                        (user_id, *part),
                    )
                )
            absent = [bid for bid in wanted if bid not in owned]
            if absent:
                return absent
            inserted = db.execute(
                f"INSERT OR IGNORE INTO snapshots (user_id, {_COLUMNS}, manifest, "
                "created_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    user_id,
                    row.id,
                    row.name,
                    row.created,
                    json.dumps(row.tags),
                    row.raw_size,
                    row.objects,
                    row.files,
                    row.committed,
                    manifest,
                    created_key(row.created),
                ),
            ).rowcount
            if inserted:
                db.executemany(
                    "INSERT OR IGNORE INTO snapshot_tags (user_id, snapshot_id, tag) "
                    "VALUES (?, ?, ?)",
                    [(user_id, row.id, tag) for tag in row.tags],
                )
                db.executemany(
                    "INSERT OR IGNORE INTO snapshot_blobs "
                    "(user_id, snapshot_id, blob_id) VALUES (?, ?, ?)",
                    [(user_id, row.id, bid) for bid in wanted],
                )
        return []

    def snapshot_ids(self, user_id: int, prefix: str) -> list[str]:
        # The prefix is hex-checked by the caller; LIKE would treat % and _
        # specially, so a range query on the primary key is used instead.
        upper = prefix + "g"
        with self._transaction() as db:
            found = db.execute(
                "SELECT id FROM snapshots WHERE user_id = ? AND id >= ? AND id < ? "
                "ORDER BY id LIMIT 6",
                (user_id, prefix, upper),
            ).fetchall()
        return [str(sid) for (sid,) in found]

    def snapshot(self, user_id: int, snapshot_id: str) -> SnapshotRow | None:
        with self._transaction() as db:
            found = db.execute(
                f"SELECT {_COLUMNS} FROM snapshots WHERE user_id = ? AND id = ?",
                (user_id, snapshot_id),
            ).fetchone()
        return None if found is None else _row(found)

    def manifest(self, user_id: int, snapshot_id: str) -> bytes | None:
        with self._transaction() as db:
            found = db.execute(
                "SELECT manifest FROM snapshots WHERE user_id = ? AND id = ?",
                (user_id, snapshot_id),
            ).fetchone()
        return None if found is None else bytes(found[0])

    def list_snapshots(
        self,
        user_id: int,
        *,
        name: str | None = None,
        tag: str | None = None,
        since: str | None = None,
        after: tuple[str, str] | None = None,
        limit: int = 100,
    ) -> list[SnapshotRow]:
        where = ["s.user_id = ?"]
        params: list[object] = [user_id]
        if name is not None:
            where.append("s.name = ?")
            params.append(name)
        if tag is not None:
            where.append(
                "EXISTS (SELECT 1 FROM snapshot_tags t WHERE t.user_id = s.user_id "
                "AND t.snapshot_id = s.id AND t.tag = ?)"
            )
            params.append(tag)
        if since is not None:
            where.append("s.created_utc >= ?")
            params.append(since)
        if after is not None:
            where.append("(s.created > ? OR (s.created = ? AND s.id > ?))")
            params.extend([after[0], after[0], after[1]])
        columns = ", ".join(f"s.{c.strip()}" for c in _COLUMNS.split(","))
        query = (
            f"SELECT {columns} FROM snapshots s WHERE {' AND '.join(where)} "
            "ORDER BY s.created, s.id LIMIT ?"
        )
        with self._transaction() as db:
            found = db.execute(query, (*params, limit)).fetchall()
        return [_row(values) for values in found]

    def remove_snapshot(self, user_id: int, snapshot_id: str) -> bool:
        with self._transaction() as db:
            gone = db.execute(
                "DELETE FROM snapshots WHERE user_id = ? AND id = ?",
                (user_id, snapshot_id),
            ).rowcount
            db.execute(
                "DELETE FROM snapshot_tags WHERE user_id = ? AND snapshot_id = ?",
                (user_id, snapshot_id),
            )
            db.execute(
                "DELETE FROM snapshot_blobs WHERE user_id = ? AND snapshot_id = ?",
                (user_id, snapshot_id),
            )
        return bool(gone)


def open_metadata(data_dir: str | Path) -> Metadata:
    """Open (creating) the embedded metadata database under ``data_dir``."""
    root = Path(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    return SQLiteMetadata(root / "metadata.sqlite3")
