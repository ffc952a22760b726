"""The snapkit server client: a repository over HTTP.

:class:`Client` implements :class:`~snapkit.store.repository.Repository`, so
:func:`snapkit.store.copy.copy` pushes to it and pulls from it, and capture
and restore take it as a destination or source.

What it guarantees:

* blobs given to :meth:`Client.put_raw` are buffered and uploaded in batches
  of about :data:`BATCH_BYTES`, one batch in flight on a background thread
  while the next fills (so compressing and uploading overlap); an upload
  that failed raises from the next ``put_raw`` that fills a batch, or from
  ``flush``;
  :meth:`Client.flush` (and :meth:`Client.add_snapshot`, which flushes
  first) returns only once the server has made every one durable and
  recorded it as the caller's;
* :meth:`Client.add_snapshot` commits the manifest last, so an interrupted
  push leaves no snapshot, and running it again uploads only what the
  server still lacks for this user;
* when the commit answers 409 because the server no longer holds blobs it
  had confirmed (garbage collection ran between upload and commit), those
  ids leave the client's cache of confirmed blobs; if a source repository
  was given (:meth:`Client.push` gives its archive, or use
  :meth:`Client.resend_from`), exactly those blobs are uploaded again and
  the commit is retried once;
* requests are retried with exponential backoff on connection errors,
  timeouts and 5xx answers (every call it makes is idempotent, uploads
  included); each retry is logged at INFO, the final failure is one error;
* a batch the server finds too large (413) is split and sent again, so a
  server with a smaller body cap than :data:`BATCH_BYTES` still works;
* snapshot ids and prefixes are checked (4 to 64 hex digits) before they go
  into a URL;
* a token from the login config file is sent only to the URL it was saved
  for;
* server errors surface as :mod:`snapkit.errors` exceptions carrying the
  server's problem ``detail``: 401 is :class:`~snapkit.errors.AuthError`, 404
  :class:`~snapkit.errors.NotFoundError`, 409
  :class:`~snapkit.errors.ConflictError`.

``bytes_sent`` and ``bytes_received`` count request and response bodies.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from snapkit import __version__
from snapkit.errors import (
    AmbiguousIdError,
    AuthError,
    ConfigError,
    ConflictError,
    IntegrityError,
    NotFoundError,
    RemoteError,
    UsageError,
)
from snapkit.remote import encode_records, iter_records
from snapkit.remote.config import (
    RemoteConfig,
    config_path,
    load_config,
    normalise_url,
)
from snapkit.store import codec
from snapkit.store.codec import Codec
from snapkit.store.repository import (
    Repository,
    SnapshotInfo,
    StoredBlob,
    is_id_prefix,
)
from snapkit.workspace.manifest import Manifest

__all__ = ["BATCH_BYTES", "MAX_IDS", "Client"]

log = logging.getLogger(__name__)

#: An upload batch is sent once it holds this many stored bytes.
BATCH_BYTES = 8 * 1024 * 1024
#: A batch download asks for at most this many stored bytes.
FETCH_BYTES = 32 * 1024 * 1024
#: Ids per "missing" or batch-download request (the server's default cap).
MAX_IDS = 10_000
#: Snapshots per listing page.
PAGE = 1000

Progress = Callable[[int, int], None]

_BLOB_ID = re.compile(r"[0-9a-f]{64}")


def _default_progress() -> bool:
    return sys.stderr.isatty()


def _snapshot_path(given: str, suffix: str = "") -> str:
    """The URL path of a snapshot id or prefix; UsageError if it is not one."""
    if not is_id_prefix(given):
        raise UsageError(
            f"snapshot id {given[:80]!r} is not valid; give 4 to 64 hex digits "
            "of an id listed by `snapkit ls`"
        )
    return f"/snapshots/{urllib.parse.quote(given.lower(), safe='')}{suffix}"


class _TooLarge(RemoteError):
    """The server refused a body or batch as over its limit (413)."""

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class Client(Repository):
    """A snapkit server, seen as a repository of the caller's snapshots.

    ``url`` and ``token`` default to ``SNAPKIT_URL`` / ``SNAPKIT_TOKEN``, then
    to the config file written by ``snapkit login``. ``progress`` shows a bar
    for long transfers: None shows it only when stderr is a terminal.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        retries: int = 3,
        progress: bool | None = None,
        batch_bytes: int = BATCH_BYTES,
    ) -> None:
        saved = load_config() if url is None or not token else RemoteConfig()
        url = url or os.environ.get("SNAPKIT_URL") or saved.url
        if not url:
            raise ConfigError(
                "no server URL: pass url=, set SNAPKIT_URL, or run `snapkit login URL`"
            )
        url = normalise_url(url)
        token = token or os.environ.get("SNAPKIT_TOKEN")
        # The saved token is a password for the saved URL, and only for it.
        if not token and saved.url and normalise_url(saved.url) == url:
            token = saved.token
        if not token:
            other = f" (the saved login is for {saved.url})" if saved.url else ""
            raise ConfigError(
                f"no token for {url}{other}: pass token=, set SNAPKIT_TOKEN, or "
                f"run `snapkit login {url}` (config file {config_path()})"
            )
        self.url = url
        self.where = f"server {self.url}"
        self.retries = max(0, retries)
        self.timeout = timeout
        self.progress = _default_progress() if progress is None else progress
        self.batch_bytes = batch_bytes
        self._http = httpx.Client(
            base_url=self.url + "/api/v1",
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"snapkit/{__version__}",
            },
        )
        self._lock = threading.Lock()
        #: The batch being filled, and the one being uploaded (in flight).
        self._pending: dict[str, StoredBlob] = {}
        self._pending_bytes = 0
        self._sending: dict[str, StoredBlob] = {}
        self._in_flight: Future[None] | None = None
        #: Set by abort(): no more retries or backoff sleeps, anywhere.
        self._aborted = threading.Event()
        #: Ids the server has confirmed it holds for this user.
        self._known: set[str] = set()
        self.bytes_sent = 0
        self.bytes_received = 0
        self.blobs_sent = 0
        #: Blobs uploaded again because a commit answered 409.
        self.blobs_resent = 0
        #: Where to read blobs again when a commit finds some missing.
        self._resend: Repository | None = None
        #: Called after each upload batch with (blobs sent, bytes sent).
        self.on_batch: Callable[[int, int], None] | None = None

    def __repr__(self) -> str:
        return f"<Client {self.url}>"

    # -- HTTP --------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """Send a request, retrying connection errors, timeouts and 5xx answers.

        Retries are logged at INFO (shown with ``-v``): what the user sees
        by default is the one error raised when the last attempt fails.
        """
        headers = {}
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        elif body is not None:
            headers["Content-Type"] = "application/octet-stream"
        attempt = 0
        while True:
            if self._aborted.is_set():
                raise RemoteError(f"{self.where}: {method} {path} abandoned (aborted)")
            try:
                response = self._http.request(
                    method, path, content=body, params=params, headers=headers
                )
            except httpx.TimeoutException as exc:
                if attempt >= self.retries:
                    raise RemoteError(
                        f"{self.where} did not answer {method} {path} within "
                        f"{self.timeout:g}s ({type(exc).__name__}, {attempt + 1} "
                        "attempts); try again later, or raise the timeout"
                    ) from exc
                failure = f"{type(exc).__name__}: {exc}"
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise RemoteError(
                        f"cannot reach {self.where} ({type(exc).__name__}: {exc}); "
                        "check the URL and that `snapkit server serve` is running"
                    ) from exc
                failure = f"{type(exc).__name__}: {exc}"
            else:
                self._count(len(body or b""), len(response.content))
                if response.status_code < 500 or attempt >= self.retries:
                    self._raise_for(response)
                    return response
                failure = f"HTTP {response.status_code}"
            delay = min(0.25 * 2**attempt, 8.0)
            log.info(
                "%s %s on %s failed (%s); retrying in %.2fs",
                method,
                path,
                self.where,
                failure,
                delay,
            )
            if self._aborted.wait(delay):
                raise RemoteError(f"{self.where}: {method} {path} abandoned (aborted)")
            attempt += 1

    def _count(self, sent: int, received: int) -> None:
        with self._lock:
            self.bytes_sent += sent
            self.bytes_received += received

    def _raise_for(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        problem: dict[str, Any] = {}
        try:
            decoded = response.json()
            if isinstance(decoded, dict):
                problem = decoded
        except ValueError:
            pass
        code = str(problem.get("code", ""))
        detail = str(problem.get("detail") or response.text[:200] or "no detail")
        status = response.status_code
        if status == 401:
            raise AuthError(
                f"{self.where} refused the token: {detail}; run "
                f"`snapkit login {self.url}` with a valid token"
            )
        if status == 404:
            raise NotFoundError(f"{self.where}: {detail}")
        if code == "ambiguous_id":
            raise AmbiguousIdError(f"{self.where}: {detail}")
        if status == 409:
            raise ConflictError(
                f"{self.where}: {detail}", [str(i) for i in problem.get("missing", [])]
            )
        if status == 413 and code == "body_too_large":
            raise _TooLarge(f"{self.where}: {detail}", int(problem.get("limit", 0)))
        if code in ("blob_mismatch", "bad_manifest"):
            raise IntegrityError(
                f"{self.where} refused the upload: {detail}. Run `snapkit verify` "
                "on the source"
            )
        if code == "bad_request":
            raise UsageError(f"{self.where}: {detail}")
        raise RemoteError(
            f"{self.where} answered {status} {code or response.reason_phrase}: {detail}"
        )

    def whoami(self) -> str:
        """Return the user name the token belongs to (checks the token)."""
        return str(self._request("GET", "/me").json()["user"])

    # -- blobs -------------------------------------------------------------

    def missing(self, ids: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(ids))
        with self._lock:
            unknown = [
                i
                for i in wanted
                if i not in self._known
                and i not in self._pending
                and i not in self._sending
            ]
        lacking: set[str] = set()
        for start in range(0, len(unknown), MAX_IDS):
            part = unknown[start : start + MAX_IDS]
            answer = self._request(
                "POST", "/blobs/missing", json_body={"ids": part}
            ).json()
            lacking.update(answer["missing"])
            with self._lock:
                self._known.update(answer["sizes"])
        return lacking

    def stored_sizes(self, ids: Iterable[str]) -> dict[str, int]:
        wanted = list(dict.fromkeys(ids))
        sizes: dict[str, int] = {}
        with self._lock:
            for i in wanted:
                queued = self._pending.get(i) or self._sending.get(i)
                if queued is not None:
                    sizes[i] = queued.stored_size
        rest = [i for i in wanted if i not in sizes]
        confirmed: dict[str, int] = {}
        for start in range(0, len(rest), MAX_IDS):
            part = rest[start : start + MAX_IDS]
            answer = self._request(
                "POST", "/blobs/missing", json_body={"ids": part}
            ).json()
            confirmed.update({k: int(v) for k, v in answer["sizes"].items()})
        with self._lock:
            # Only what the server said it holds: queued blobs are not yet.
            self._known.update(confirmed)
        return {**sizes, **confirmed}

    def put_raw(self, blob: StoredBlob) -> None:
        """Queue a blob for upload; the server verifies it against its id."""
        with self._lock:
            if (
                blob.id in self._known
                or blob.id in self._pending
                or blob.id in self._sending
            ):
                return
            full = self._pending and self._pending_bytes + blob.stored_size > (
                self.batch_bytes
            )
        if full:
            self._send_pending()
        with self._lock:
            self._pending[blob.id] = blob
            self._pending_bytes += blob.stored_size

    def flush(self) -> None:
        """Upload every queued blob; on return the server holds them durably."""
        self._send_pending()
        self._wait_in_flight()

    def _send_pending(self) -> None:
        """Hand the filled batch to the uploader, once the one before it is
        done (at most one batch in flight)."""
        self._wait_in_flight()
        with self._lock:
            batch = list(self._pending.values())
            if not batch:
                return
            self._sending = dict(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
            self._in_flight = self._start_upload(batch)

    def _start_upload(self, batch: list[StoredBlob]) -> Future[None]:
        """Upload ``batch`` on a thread of its own.

        A daemon thread, not a pool worker: after :meth:`abort` (Ctrl-C), a
        request blocked on a server that stopped answering must neither be
        waited for nor keep the process from exiting; the server commits
        nothing for a batch by itself.
        """
        future: Future[None] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                self._send(batch)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(None)

        threading.Thread(target=run, name="snapkit-upload", daemon=True).start()
        return future

    def _wait_in_flight(self) -> None:
        """Wait for the batch in flight; raise what its upload raised."""
        with self._lock:
            future, self._in_flight = self._in_flight, None
        if future is None:
            return
        try:
            future.result()
        except BaseException:
            with self._lock:
                self._sending.clear()  # not confirmed: a retry sends them again
            raise

    def _send(self, batch: list[StoredBlob]) -> None:
        sent_bytes = self._upload(batch)
        with self._lock:
            self._known.update(b.id for b in batch)
            self._sending.clear()
            self.blobs_sent += len(batch)
            sent = self.blobs_sent
        log.debug("%s: uploaded %d blobs, %d bytes", self.where, len(batch), sent_bytes)
        if self.on_batch is not None:
            self.on_batch(sent, self.bytes_sent)

    def _upload(self, batch: list[StoredBlob]) -> int:
        """POST one batch; halve it while the server says it is too large."""
        body = encode_records(batch)
        try:
            self._request("POST", "/blobs", body=body)
        except _TooLarge as exc:
            if len(batch) < 2:
                raise
            if exc.limit:
                self.batch_bytes = min(self.batch_bytes, exc.limit // 2)
            half = len(batch) // 2
            log.info(
                "%s: upload of %d bytes over the server's limit of %d; splitting",
                self.where,
                len(body),
                exc.limit,
            )
            return self._upload(batch[:half]) + self._upload(batch[half:])
        return len(body)

    def get_raw(self, blob_id: str) -> StoredBlob:
        """Return one blob as stored; the receiver verifies it."""
        if not _BLOB_ID.fullmatch(blob_id):
            raise UsageError(
                f"blob id {blob_id[:80]!r} is not valid; a blob id is 64 "
                "lowercase hex digits"
            )
        response = self._request("GET", f"/blobs/{blob_id}")
        try:
            kind = Codec(int(response.headers["X-Snapkit-Codec"]))
            raw_size = int(response.headers["X-Snapkit-Raw-Size"])
        except (KeyError, ValueError) as exc:
            raise RemoteError(
                f"{self.where}: blob {blob_id} came without valid codec headers"
            ) from exc
        return StoredBlob(blob_id, kind, raw_size, response.content)

    def get_many(
        self, ids: Sequence[str], sizes: dict[str, int] | None = None
    ) -> Iterator[StoredBlob]:
        """Yield blobs in the order of ``ids``, fetched in large batches.

        ``sizes`` (from :meth:`stored_sizes`) lets batches be cut by bytes.
        """
        sizes = sizes if sizes is not None else self.stored_sizes(ids)
        batch: list[str] = []
        batch_bytes = 0
        for blob_id in ids:
            size = sizes.get(blob_id, 0)
            if batch and (batch_bytes + size > FETCH_BYTES or len(batch) >= MAX_IDS):
                yield from self._fetch(batch)
                batch, batch_bytes = [], 0
            batch.append(blob_id)
            batch_bytes += size
        if batch:
            yield from self._fetch(batch)

    def _fetch(self, ids: list[str]) -> Iterator[StoredBlob]:
        try:
            response = self._request("POST", "/blobs/fetch", json_body={"ids": ids})
        except _TooLarge:
            if len(ids) < 2:
                raise
            half = len(ids) // 2
            yield from self._fetch(ids[:half])
            yield from self._fetch(ids[half:])
            return
        blobs = list(iter_records(response.content, f"{self.where}: download"))
        if [b.id for b in blobs] != ids:
            raise RemoteError(
                f"{self.where}: batch download returned {len(blobs)} blobs for "
                f"{len(ids)} asked; try again"
            )
        yield from blobs

    # -- snapshots -----------------------------------------------------------

    def add_snapshot(self, manifest: Manifest) -> str:
        """Upload what is queued, then commit; raise ConflictError if blobs lack."""
        self.flush()
        data = manifest.encode()
        try:
            answer = self._request("POST", "/snapshots", body=data).json()
        except ConflictError as exc:
            answer = self._recommit(data, exc)
        snapshot_id = str(answer["id"])
        if snapshot_id != codec.blob_id(data):
            raise RemoteError(
                f"{self.where} committed snapshot {snapshot_id}, but the manifest "
                f"hashes to {codec.blob_id(data)}"
            )
        log.info("%s: committed snapshot %s", self.where, snapshot_id[:12])
        return snapshot_id

    def _recommit(self, data: bytes, conflict: ConflictError) -> Any:
        """Upload again the blobs a 409 lists, then commit once more."""
        missing = conflict.missing
        with self._lock:
            # Those the server confirmed once and holds no longer.
            confirmed = self._known.intersection(missing)
            self._known.difference_update(missing)
        source = self._resend
        if source is None or not missing:
            if not confirmed:
                raise conflict
            raise ConflictError(
                f"{conflict} (the server no longer holds {len(missing)} blobs "
                "it had confirmed, e.g. after garbage collection). Run the same "
                "push or capture again: it uploads only those",
                missing,
            ) from conflict
        log.warning(
            "%s: commit found %d blobs missing (collected meanwhile?); "
            "uploading them again from %s",
            self.where,
            len(missing),
            source.where,
        )
        for blob_id in missing:
            blob = source.get_raw(blob_id)
            with self._lock:
                self._pending[blob.id] = blob
                self._pending_bytes += blob.stored_size
        self.flush()
        with self._lock:
            self.blobs_resent += len(missing)
        return self._request("POST", "/snapshots", body=data).json()

    @contextmanager
    def resend_from(self, source: Repository) -> Iterator[None]:
        """While the block runs, a commit that answers 409 re-reads the blobs
        it lists from ``source`` and uploads them again, once."""
        previous, self._resend = self._resend, source
        try:
            yield
        finally:
            self._resend = previous

    def list_snapshots(
        self,
        name: str | None = None,
        tag: str | None = None,
        since: str | None = None,
    ) -> list[SnapshotInfo]:
        """The caller's snapshots, oldest first, optionally filtered."""
        params: dict[str, Any] = {"limit": PAGE}
        for key, value in (("name", name), ("tag", tag), ("since", since)):
            if value is not None:
                params[key] = value
        found: list[SnapshotInfo] = []
        while True:
            page = self._request("GET", "/snapshots", params=params).json()
            found.extend(
                SnapshotInfo(
                    id=s["id"],
                    name=s["name"],
                    created=s["created"],
                    tags=list(s["tags"]),
                    raw_size=s["raw_size"],
                    objects=s["objects"],
                    files=s["files"],
                )
                for s in page["snapshots"]
            )
            if not page.get("next_cursor"):
                return found
            params["cursor"] = page["next_cursor"]

    def snapshots(self) -> list[SnapshotInfo]:
        return self.list_snapshots()

    def snapshot(self, snapshot_id: str) -> Manifest:
        response = self._request("GET", _snapshot_path(snapshot_id, "/manifest"))
        full = response.headers.get("X-Snapkit-Snapshot-Id", "")
        where = f"{self.where}: snapshot {full or snapshot_id}"
        codec.verify(response.content, full, where)
        return Manifest.decode(response.content, where)

    def remove_snapshot(self, snapshot_id: str) -> str:
        answer = self._request("DELETE", _snapshot_path(snapshot_id)).json()
        return str(answer["id"])

    # -- the operations data scientists call -------------------------------

    def create_snapshot(self, **capture_options: Any) -> Any:
        """Capture a workspace straight to the server (see :func:`snapkit.capture`).

        Only blobs the server lacks for this user are read and uploaded.
        Returns the :class:`~snapkit.snapshot.Snapshot`.
        """
        from snapkit.capture import capture

        return capture(to=self, **capture_options)

    def get_snapshot(self, snapshot_id: str) -> Any:
        """Open one of the caller's snapshots as a :class:`~snapkit.Snapshot`."""
        from snapkit.snapshot import open as open_snapshot

        return open_snapshot(self, snapshot_id)

    def delete_snapshot(self, snapshot_id: str) -> str:
        """Forget a snapshot on the server; return its full id."""
        return self.remove_snapshot(snapshot_id)

    def push(
        self, archive_path: str | os.PathLike[str], snapshot_id: str | None = None
    ) -> list[Any]:
        """Copy one snapshot (or all) of an archive to the server.

        Returns one :class:`~snapkit.store.copy.CopyStats` per snapshot.
        """
        from snapkit.store.archive import Archive
        from snapkit.store.copy import copy

        with Archive(archive_path, "r") as source:
            if snapshot_id is not None:
                ids = [source.snapshot(snapshot_id).id]
            else:
                ids = [info.id for info in source.snapshots()]
            done = []
            for sid in ids:
                with (
                    self._bar(f"push {sid[:12]}") as progress,
                    self.resend_from(source),
                ):
                    done.append(copy(source, self, sid, progress=progress))
        return done

    def pull(self, snapshot_id: str, path: str | os.PathLike[str]) -> Any:
        """Copy one snapshot from the server into the archive at ``path``.

        An existing archive keeps its snapshots; only blobs it lacks are
        downloaded, in batches. Returns a :class:`~snapkit.store.copy.CopyStats`.
        """
        from snapkit.store.archive import Archive
        from snapkit.store.copy import CopyStats

        manifest = self.snapshot(snapshot_id)
        needed = sorted(manifest.blob_ids())
        with Archive(Path(path), "a") as target:
            lacking = target.missing(needed)
            to_fetch = [b for b in needed if b in lacking]
            sizes = self.stored_sizes(to_fetch)
            total = sum(sizes.values())
            stats = CopyStats(
                manifest.id,
                blobs_total=len(needed),
                bytes_total_raw=manifest.raw_size,
            )
            with self._bar(f"pull {manifest.id[:12]}") as progress:
                for blob in self.get_many(to_fetch, sizes):
                    target.put_raw(blob)
                    stats.blobs_sent += 1
                    stats.bytes_sent += blob.stored_size
                    if progress is not None:
                        progress(stats.bytes_sent, total)
            target.add_snapshot(manifest)
        return stats

    def restore(
        self,
        snapshot_id: str,
        into: str | os.PathLike[str] | None = None,
        namespace: MutableMapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Restore one of the caller's snapshots (see :func:`snapkit.restore`)."""
        from snapkit.restore import restore

        return restore(
            self, into=into, namespace=namespace, snapshot_id=snapshot_id, **options
        )

    def diff(self, a: str, b: str) -> Any:
        """Compare two of the caller's snapshots (a :class:`snapkit.diff.Diff`).

        ``a`` and ``b`` are ids or unique prefixes. Reads the two manifests
        and asks the server the stored sizes of B's blobs that A lacks, so
        both ids are filled in and ``totals.upload_exact`` is true; never
        reads a blob. The client stays open.
        """
        from snapkit.diff import diff

        return diff((self, a), (self, b))

    # -- lifetime ------------------------------------------------------------

    def __enter__(self) -> Client:
        return self

    @contextmanager
    def _bar(self, label: str) -> Iterator[Progress | None]:
        """A progress bar on stderr while the block runs, if asked for and
        rich (the ``client`` extra) is installed; without rich, no bar."""
        if not self.progress:
            yield None
            return
        try:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TransferSpeedColumn,
            )
        except ImportError:
            log.debug("no progress bar: rich is not installed")
            yield None
            return

        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True),
            transient=True,
            refresh_per_second=4,
        ) as bar:
            task = bar.add_task(label, total=None)

            def update(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            yield update

    def close(self) -> None:
        """Upload what is queued, then close the connections."""
        try:
            self.flush()
        finally:
            self._http.close()

    def abort(self) -> None:
        """Drop queued blobs and close the connections."""
        with self._lock:
            self._pending.clear()
            self._pending_bytes = 0
        # An upload in flight is not waited for (Ctrl-C must not hang on a
        # server that stopped answering): its thread is a daemon, and the
        # event ends its retries. Its blobs are valid content either way,
        # and nothing is committed.
        self._aborted.set()
        with self._lock:
            self._in_flight = None
            self._sending.clear()
        self._http.close()
