"""The snapkit server's HTTP API (FastAPI), versioned under ``/api/v1``.

Every route but ``/api/v1/health`` needs a bearer token. Every query is
scoped to the caller: another user's snapshot or blob id goes down exactly
the same path as an id nobody created and answers the same 404 body.

Upload ordering (promise "nothing half-written"): a blob body is parsed as
it streams in and every blob is verified against its id; only when the whole
body checks out are the blobs written to storage and flushed (fsync,
rename), and only then is ownership recorded, with the form the caller sent,
in one transaction. A snapshot commit succeeds only if the caller owns every
blob it names. Everything a caller learns about a blob (missing or not, its
stored size, codec and bytes) comes from their own row and their own form.

Errors are ``application/problem+json`` with ``type``, ``title``,
``status``, ``detail`` and a stable ``code`` (see :data:`CODES`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import io
import json
import logging
import re
import shutil
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from snapkit import __version__
from snapkit.errors import (
    AmbiguousIdError,
    IntegrityError,
    NotFoundError,
    SnapkitError,
    UsageError,
)
from snapkit.remote import MAX_RECORD, RecordParser, encode_record, parse_time
from snapkit.server.auth import User, authenticate
from snapkit.server.metadata import BlobForm, Metadata, SnapshotRow, open_metadata
from snapkit.server.storage import BlobStorage
from snapkit.store import serial
from snapkit.store.pack import KIND_ARCHIVE, PackWriter
from snapkit.store.repository import (
    Repository,
    SnapshotInfo,
    StoredBlob,
    resolve_prefix,
)
from snapkit.workspace.manifest import Manifest

__all__ = ["CODES", "ServerConfig", "create_app"]

log = logging.getLogger(__name__)

API = "/api/v1"
PROBLEM_JSON = "application/problem+json"

#: Stable error codes and their titles; clients branch on the code.
CODES: dict[str, str] = {
    "bad_request": "The request is malformed",
    "unauthorized": "Missing or invalid token",
    "not_found": "Not found",
    "ambiguous_id": "Snapshot id prefix is ambiguous",
    "method_not_allowed": "Method not allowed",
    "blob_mismatch": "Blob bytes do not match their id",
    "bad_manifest": "The manifest cannot be read",
    "missing_blobs": "The manifest names blobs you have not uploaded",
    "body_too_large": "Request body too large",
    "too_many_ids": "Too many ids in one request",
    "internal": "Internal server error",
}

_HEX64 = re.compile(r"[0-9a-f]{64}")
_PREFIX = re.compile(r"[0-9a-fA-F]{4,64}")


@dataclass(frozen=True)
class ServerConfig:
    """Where the server keeps its data and the ceilings it enforces."""

    data: Path
    #: Ceiling on one blob upload body (and one batch download). A body
    #: holding one record alone may be larger, up to ``MAX_RECORD``, so that
    #: any blob under the blob ceiling can be pushed and pulled.
    max_body: int = 64 * 1024 * 1024
    #: Ceiling on one manifest commit body.
    max_manifest: int = 256 * 1024 * 1024
    #: Ceiling on the ids of one "missing" or batch-download request.
    max_ids: int = 10_000
    #: Ceiling on one page of a snapshot listing.
    max_page: int = 1000

    @property
    def packs(self) -> Path:
        return self.data / "packs"

    @property
    def forms(self) -> Path:
        return self.data / "forms"


class Problem(Exception):
    """An error response in problem+json form."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = extra

    def response(self) -> JSONResponse:
        body = {
            "type": f"urn:snapkit:problem:{self.code}",
            "title": CODES.get(self.code, self.code),
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            **self.extra,
        }
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(
            body, status_code=self.status, media_type=PROBLEM_JSON, headers=headers
        )


def _not_found_snapshot(given: str) -> Problem:
    # The one answer for an unknown id and for another user's id alike.
    return Problem(
        404,
        "not_found",
        f"no snapshot {given.lower()}; list your snapshots with `snapkit ls`",
    )


def _not_found_blob(blob_id: str) -> Problem:
    return Problem(404, "not_found", f"no blob {blob_id}")


# -- models ------------------------------------------------------------------


class IdsRequest(BaseModel):
    ids: list[str] = Field(description="hex SHA-256 blob ids")


class MissingResponse(BaseModel):
    missing: list[str]
    sizes: dict[str, int]


class UploadResponse(BaseModel):
    blobs: int
    bytes: int


class SnapshotModel(BaseModel):
    id: str
    name: str
    created: str
    tags: list[str]
    raw_size: int
    objects: int
    files: int
    committed: str


class SnapshotPage(BaseModel):
    snapshots: list[SnapshotModel]
    next_cursor: str | None


class SnapshotDetail(BaseModel):
    snapshot: SnapshotModel
    manifest: dict[str, Any]


class CommitResponse(BaseModel):
    id: str


class WhoAmI(BaseModel):
    user: str


def _model(row: SnapshotRow) -> SnapshotModel:
    return SnapshotModel(**dataclasses.asdict(row))


def _jsonable(value: Any) -> Any:
    """Make a decoded msgpack value JSON-safe (bytes become hex strings)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _check_ids(ids: list[str], limit: int) -> list[str]:
    if len(ids) > limit:
        raise Problem(
            413,
            "too_many_ids",
            f"{len(ids)} ids in one request, over the limit of {limit}; "
            "split them into batches",
            limit=limit,
        )
    for blob_id in ids:
        if not isinstance(blob_id, str) or not _HEX64.fullmatch(blob_id):
            raise Problem(
                400,
                "bad_request",
                f"blob id {str(blob_id)[:80]!r} is not 64 lowercase hex digits",
            )
    return list(dict.fromkeys(ids))


def _check_length(request: Request, cap: int, what: str) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise _too_large(int(declared), cap, what)


def _too_large(size: int, cap: int, what: str) -> Problem:
    return Problem(
        413,
        "body_too_large",
        f"{what} of {size} bytes is over the {cap}-byte limit; send it in "
        "smaller batches (a blob larger than the limit goes alone, in a body "
        "or batch of just that blob)",
        limit=cap,
    )


def _allowed(parser: RecordParser, cap: int) -> int:
    """How many bytes an upload body may hold: ``cap``, or exactly one record
    when that body's first record alone is larger than ``cap``."""
    first = parser.first_record
    if first is not None and first > cap:
        return first
    return cap


async def _read_capped(request: Request, cap: int, what: str) -> bytes:
    _check_length(request, cap, what)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise _too_large(len(body), cap, what)
    return bytes(body)


def _verify(blobs: list[StoredBlob]) -> list[StoredBlob]:
    """Check each blob against its id; return them marked as checked."""
    for blob in blobs:
        try:
            blob.decode(f"upload: blob {blob.id}")
        except IntegrityError as exc:
            raise Problem(
                400,
                "blob_mismatch",
                f"blob {blob.id} does not match its id ({exc}); nothing from "
                "this upload was stored",
                id=blob.id,
            ) from exc
    return [dataclasses.replace(blob, trusted=True) for blob in blobs]


def _encode_cursor(row: SnapshotRow) -> str:
    raw = json.dumps([row.created, row.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _bad_cursor(cursor: str) -> Problem:
    return Problem(
        400,
        "bad_request",
        f"cursor {cursor[:80]!r} is not valid; pass next_cursor from the last page",
    )


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, sid = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise _bad_cursor(cursor) from exc
    if not isinstance(created, str) or not isinstance(sid, str):
        raise _bad_cursor(cursor)
    return created, sid


class UserRepository(Repository):
    """A read-only repository view of one user's blobs and snapshots.

    What the archive download, diff and audit read from: it sees exactly what
    the user owns and nothing else.
    """

    def __init__(self, meta: Metadata, storage: BlobStorage, user: User) -> None:
        self.meta = meta
        self.storage = storage
        self.user = user
        self.where = "server"

    def missing(self, ids: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(ids))
        return set(wanted) - set(self.meta.owned_sizes(self.user.id, wanted))

    def stored_sizes(self, ids: Iterable[str]) -> dict[str, int]:
        return self.meta.owned_sizes(self.user.id, list(dict.fromkeys(ids)))

    def put_raw(self, blob: StoredBlob) -> None:
        raise UsageError("the server's view of a user's snapshots is read-only")

    def get_raw(self, blob_id: str) -> StoredBlob:
        """The blob in the form this user uploaded, checked on the way out."""
        form = self.meta.owned_forms(self.user.id, [blob_id]).get(blob_id)
        return self.in_form(blob_id, form)

    def snapshot_forms(self, snapshot_id: str) -> dict[str, BlobForm]:
        """This user's form of every blob their snapshot names, in one query."""
        return self.meta.snapshot_forms(self.user.id, snapshot_id)

    def in_form(self, blob_id: str, form: BlobForm | None) -> StoredBlob:
        """The blob in ``form``, which must come from this user's rows; None
        (the user owns no such blob) is NotFoundError."""
        if form is None:
            raise NotFoundError(f"no blob {blob_id}")
        return self.storage.get(blob_id, form)

    def add_snapshot(self, manifest: Manifest) -> str:
        raise UsageError("the server's view of a user's snapshots is read-only")

    def snapshots(self) -> list[SnapshotInfo]:
        rows = self.meta.list_snapshots(self.user.id, limit=1 << 62)
        return [
            SnapshotInfo(
                r.id, r.name, r.created, r.tags, r.raw_size, r.objects, r.files
            )
            for r in rows
        ]

    def resolve(self, given: str) -> str:
        if not _PREFIX.fullmatch(given):
            raise Problem(
                400,
                "bad_request",
                f"snapshot id {given[:80]!r} is not valid; give 4 to 64 hex digits",
            )
        candidates = self.meta.snapshot_ids(self.user.id, given.lower())
        try:
            return resolve_prefix(given, candidates, "your snapshots")
        except AmbiguousIdError as exc:
            raise Problem(400, "ambiguous_id", str(exc)) from exc
        except NotFoundError as exc:
            raise _not_found_snapshot(given) from exc

    def snapshot(self, snapshot_id: str) -> Manifest:
        full = self.resolve(snapshot_id)
        data = self.meta.manifest(self.user.id, full)
        if data is None:
            raise _not_found_snapshot(snapshot_id)
        return Manifest.decode(data, f"server: snapshot {full}")

    def remove_snapshot(self, snapshot_id: str) -> str:
        raise UsageError("the server's view of a user's snapshots is read-only")


_bearer = HTTPBearer(
    auto_error=False, description="a token from `snapkit server adduser`"
)


def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """Authenticate the request's bearer token; raise 401 otherwise."""
    if credentials is None:
        raise Problem(
            401, "unauthorized", "no token; send `Authorization: Bearer snk_...`"
        )
    user = authenticate(request.app.state.meta, credentials.credentials)
    if user is None:
        raise Problem(
            401,
            "unauthorized",
            "the token is not valid; get one from `snapkit server adduser`",
        )
    return user


Caller = Annotated[User, Depends(current_user)]


def create_app(config: ServerConfig) -> FastAPI:
    """Build the app over the metadata database and pack store in ``config.data``."""
    config.data.mkdir(parents=True, exist_ok=True)
    _sweep_downloads(config.data)
    meta = open_metadata(config.data)
    storage = BlobStorage(config.packs, config.forms)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            storage.close()
            meta.close()

    app = FastAPI(
        title="snapkit server",
        version=__version__,
        description=(
            "A multi-user repository of snapkit snapshots. Each snapshot is "
            "visible only to the user who committed it."
        ),
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.meta = meta
    app.state.storage = storage
    app.state.config = config
    _install_handlers(app)

    def view(user: User) -> UserRepository:
        return UserRepository(meta, storage, user)

    # -- health and identity -------------------------------------------------

    @app.get(f"{API}/health", tags=["server"])
    def health() -> dict[str, str]:
        """Liveness check; needs no token."""
        return {"status": "ok", "version": __version__}

    @app.get(f"{API}/me", tags=["server"])
    def me(user: Caller) -> WhoAmI:
        """Name the user a token belongs to (what `snapkit login` checks)."""
        return WhoAmI(user=user.name)

    # -- blobs -----------------------------------------------------------

    @app.post(f"{API}/blobs/missing", tags=["blobs"])
    def blobs_missing(body: IdsRequest, user: Caller) -> MissingResponse:
        """Which of these ids the caller has not uploaded.

        Answered only from the caller's own blobs: a blob another user
        uploaded is missing for this caller. ``sizes`` gives the stored size
        of each id the caller holds.
        """
        ids = _check_ids(body.ids, config.max_ids)
        sizes = meta.owned_sizes(user.id, ids)
        return MissingResponse(missing=[i for i in ids if i not in sizes], sizes=sizes)

    @app.post(
        f"{API}/blobs",
        tags=["blobs"],
        status_code=201,
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "blob records, see snapkit.remote",
                "content": {
                    "application/octet-stream": {
                        "schema": {"type": "string", "format": "binary"}
                    }
                },
            }
        },
    )
    async def blobs_upload(request: Request, user: Caller) -> UploadResponse:
        """Upload many blobs as one body of records.

        Each blob is verified against its id as it arrives. If any fails,
        the answer is 400 ``blob_mismatch`` and nothing from the body is
        stored. Otherwise the blobs are made durable and only then recorded
        as the caller's.
        """
        cap = config.max_body
        _check_length(request, max(cap, MAX_RECORD), "blob upload")
        parser = RecordParser("blob upload")
        blobs: dict[str, StoredBlob] = {}
        received = 0
        try:
            async for chunk in request.stream():
                received += len(chunk)
                arrived = parser.feed(chunk)
                if received > _allowed(parser, cap):
                    raise _too_large(received, cap, "blob upload")
                if arrived:
                    checked = await run_in_threadpool(_verify, arrived)
                    blobs.update((b.id, b) for b in checked)
            parser.close()
        except IntegrityError as exc:  # FormatError from the parser
            raise Problem(400, "bad_request", str(exc)) from exc

        batch = list(blobs.values())
        forms = await run_in_threadpool(storage.put_many, batch)
        await run_in_threadpool(meta.add_blobs, user.id, forms)
        log.info("user %s uploaded %d blobs, %d bytes", user.name, len(batch), received)
        return UploadResponse(blobs=len(batch), bytes=received)

    @app.post(
        f"{API}/blobs/fetch",
        tags=["blobs"],
        response_class=Response,
        responses={200: {"content": {"application/octet-stream": {}}}},
    )
    def blobs_fetch(body: IdsRequest, user: Caller) -> Response:
        """Download many of the caller's blobs as one body of records.

        404 (the same answer as for one unknown blob) if any id is not the
        caller's.
        """
        ids = _check_ids(body.ids, config.max_ids)
        forms = meta.owned_forms(user.id, ids)
        for blob_id in ids:
            if blob_id not in forms:
                raise _not_found_blob(blob_id)
        total = sum(f.stored_size for f in forms.values())
        if total > config.max_body and len(ids) > 1:
            raise _too_large(total, config.max_body, "batch download")

        def records() -> Iterator[bytes]:
            for blob_id in ids:
                yield encode_record(storage.get(blob_id, forms[blob_id]))

        return StreamingResponse(records(), media_type="application/octet-stream")

    @app.get(
        f"{API}/blobs/{{blob_id}}",
        tags=["blobs"],
        response_class=Response,
        responses={200: {"content": {"application/octet-stream": {}}}},
    )
    def blob_get(blob_id: str, user: Caller) -> Response:
        """One of the caller's blobs, in the form they uploaded (see the headers)."""
        form = None
        if _HEX64.fullmatch(blob_id):
            form = meta.owned_forms(user.id, [blob_id]).get(blob_id)
        if form is None:
            raise _not_found_blob(blob_id)
        blob = storage.get(blob_id, form)
        return Response(
            blob.data,
            media_type="application/octet-stream",
            headers={
                "X-Snapkit-Codec": str(int(blob.codec)),
                "X-Snapkit-Raw-Size": str(blob.raw_size),
            },
        )

    # -- snapshots -------------------------------------------------------

    @app.post(
        f"{API}/snapshots",
        tags=["snapshots"],
        status_code=201,
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "the manifest's msgpack bytes",
                "content": {
                    "application/octet-stream": {
                        "schema": {"type": "string", "format": "binary"}
                    }
                },
            }
        },
    )
    async def snapshot_commit(request: Request, user: Caller) -> CommitResponse:
        """Commit a manifest once the caller owns every blob it names.

        409 ``missing_blobs`` lists the ids not yet uploaded. Committing the
        same manifest again is a no-op that answers the same id.
        """
        data = await _read_capped(request, config.max_manifest, "manifest")
        return await run_in_threadpool(_commit, data, user)

    def _commit(data: bytes, user: User) -> CommitResponse:
        snapshot_id = hashlib.sha256(data).hexdigest()
        try:
            manifest = Manifest.decode(data, "uploaded manifest")
        except IntegrityError as exc:
            raise Problem(400, "bad_manifest", str(exc)) from exc
        if manifest.encode() != data:
            raise Problem(
                400,
                "bad_manifest",
                "manifest bytes are not in canonical form; encode it with "
                "snapkit.workspace.manifest.Manifest.encode",
            )
        info = SnapshotInfo.of(manifest, snapshot_id)
        row = SnapshotRow(
            id=snapshot_id,
            name=info.name,
            created=info.created,
            tags=info.tags,
            raw_size=info.raw_size,
            objects=info.objects,
            files=info.files,
            committed=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        )
        absent = meta.add_snapshot(user.id, row, data, manifest.blob_ids())
        if absent:
            shown = ", ".join(a[:12] for a in absent[:5])
            raise Problem(
                409,
                "missing_blobs",
                f"snapshot {snapshot_id} names {len(absent)} blobs you have not "
                f"uploaded ({shown}{', ...' if len(absent) > 5 else ''}); "
                "upload them, then commit again",
                missing=absent,
            )
        log.info("user %s committed snapshot %s", user.name, snapshot_id)
        return CommitResponse(id=snapshot_id)

    @app.get(f"{API}/snapshots", tags=["snapshots"])
    def snapshot_list(
        user: Caller,
        name: str | None = None,
        tag: str | None = None,
        since: Annotated[
            str | None,
            Query(
                description="ISO 8601 time, e.g. 2026-01-31 or "
                "2026-01-31T12:00:00+01:00 (no offset: UTC)"
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1)] = 100,
        cursor: str | None = None,
    ) -> SnapshotPage:
        """The caller's snapshots, oldest first, one page at a time."""
        limit = min(limit, config.max_page)
        after = _decode_cursor(cursor) if cursor else None
        try:
            utc = parse_time(since) if since is not None else None
        except UsageError as exc:
            raise Problem(400, "bad_request", f"since: {exc}") from exc
        rows = meta.list_snapshots(
            user.id, name=name, tag=tag, since=utc, after=after, limit=limit + 1
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return SnapshotPage(
            snapshots=[_model(r) for r in rows],
            next_cursor=_encode_cursor(rows[-1]) if more and rows else None,
        )

    @app.get(f"{API}/snapshots/{{snapshot_id}}", tags=["snapshots"])
    def snapshot_get(snapshot_id: str, user: Caller) -> SnapshotDetail:
        """A snapshot's metadata and its manifest as JSON."""
        full = view(user).resolve(snapshot_id)
        row = meta.snapshot(user.id, full)
        data = meta.manifest(user.id, full)
        if row is None or data is None:
            raise _not_found_snapshot(snapshot_id)
        doc = serial.unpack(data, f"snapshot {full}")
        return SnapshotDetail(snapshot=_model(row), manifest=_jsonable(doc))

    @app.get(
        f"{API}/snapshots/{{snapshot_id}}/manifest",
        tags=["snapshots"],
        response_class=Response,
        responses={200: {"content": {"application/octet-stream": {}}}},
    )
    def snapshot_manifest(snapshot_id: str, user: Caller) -> Response:
        """A snapshot's manifest bytes (their SHA-256 is the id)."""
        full = view(user).resolve(snapshot_id)
        data = meta.manifest(user.id, full)
        if data is None:
            raise _not_found_snapshot(snapshot_id)
        return Response(
            data,
            media_type="application/octet-stream",
            headers={"X-Snapkit-Snapshot-Id": full},
        )

    @app.delete(f"{API}/snapshots/{{snapshot_id}}", tags=["snapshots"])
    def snapshot_delete(snapshot_id: str, user: Caller) -> CommitResponse:
        """Forget a snapshot; its blobs stay until garbage collection."""
        full = view(user).resolve(snapshot_id)
        if not meta.remove_snapshot(user.id, full):
            raise _not_found_snapshot(snapshot_id)
        log.info("user %s removed snapshot %s", user.name, full)
        return CommitResponse(id=full)

    @app.get(
        f"{API}/snapshots/{{snapshot_id}}/archive",
        tags=["snapshots"],
        response_class=Response,
        responses={200: {"content": {"application/octet-stream": {}}}},
    )
    def snapshot_archive(snapshot_id: str, user: Caller) -> Response:
        """The snapshot and all its blobs as one `.snap` archive.

        Streamed as it is assembled: nothing is written to disk. A blob
        that fails its check ends the stream early, and the archive's
        missing footer makes the receiver refuse it.
        """
        repo = view(user)
        full = repo.resolve(snapshot_id)
        data = meta.manifest(user.id, full)
        if data is None:
            raise _not_found_snapshot(snapshot_id)
        return StreamingResponse(
            _archive_stream(repo, full, data),
            media_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{full[:12]}.snap"'},
        )

    @app.get(f"{API}/snapshots/{{a}}/diff/{{b}}", tags=["snapshots"])
    def snapshot_diff(a: str, b: str, user: Caller) -> Any:
        """What changed from snapshot ``a`` to snapshot ``b``."""
        from snapkit.diff import diff

        repo = view(user)
        first = (repo, repo.resolve(a))
        second = (repo, repo.resolve(b))
        return _jsonable(_as_data(diff(first, second)))

    @app.get(f"{API}/snapshots/{{snapshot_id}}/audit", tags=["snapshots"])
    def snapshot_audit(snapshot_id: str, user: Caller) -> Any:
        """Sizes per object, file and library of one snapshot.

        Limits come from no file: the server's working folder is not the
        user's project.
        """
        from snapkit.audit import audit

        repo = view(user)
        report = audit((repo, repo.resolve(snapshot_id)), use_config=False)
        return _jsonable(_as_data(report))

    return app


def _as_data(result: Any) -> Any:
    """Turn a diff or audit result into plain data."""
    for method in ("to_json", "to_dict"):
        if callable(getattr(result, method, None)):
            return getattr(result, method)()
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return dataclasses.asdict(result)
    return result


def _archive_stream(
    repo: UserRepository, snapshot_id: str, manifest: bytes
) -> Iterator[bytes]:
    """Yield a `.snap` archive of one snapshot, piece by piece.

    The pack layout is written front to back (header, blob records, the
    manifest, index, footer), so it can go out as it is produced; each
    blob is checked against the caller's form before it is sent.
    """
    sink = io.BytesIO()
    writer = PackWriter(sink, KIND_ARCHIVE)
    decoded = Manifest.decode(manifest, f"server: snapshot {snapshot_id}")
    forms = repo.snapshot_forms(snapshot_id)
    for blob_id in sorted(decoded.blob_ids()):
        form = forms.get(blob_id)
        # A blob snapshot_blobs does not list (a database upgraded without
        # those rows) is looked up on its own, as the caller's all the same.
        blob = repo.get_raw(blob_id) if form is None else repo.in_form(blob_id, form)
        writer.add_blob(blob.id, blob.codec, blob.raw_size, blob.data)
        yield _drain(sink)
    writer.add_manifest(snapshot_id, manifest)
    writer.finish()
    yield _drain(sink)


def _drain(sink: io.BytesIO) -> bytes:
    out = sink.getvalue()
    sink.seek(0)
    sink.truncate()
    return out


def _sweep_downloads(data_dir: Path) -> None:
    """Remove ``DATA/tmp``, where servers that built each archive download on
    disk before sending it left files after a crash or a dropped connection.
    """
    tmp = data_dir / "tmp"
    if tmp.is_dir():
        leftovers = sum(1 for _ in tmp.iterdir())
        shutil.rmtree(tmp)
        log.warning("removed %s (%d leftover downloads)", tmp, leftovers)


def _install_handlers(app: FastAPI) -> None:
    async def on_problem(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return exc.response()

    async def on_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        detail = f"{where}: {first.get('msg', 'invalid')}" if where else "invalid"
        return Problem(400, "bad_request", detail).response()

    async def on_http(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {
            404: "not_found",
            405: "method_not_allowed",
            401: "unauthorized",
        }.get(exc.status_code, "bad_request")
        return Problem(exc.status_code, code, str(exc.detail)).response()

    async def on_snapkit(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, SnapkitError)
        if isinstance(exc, NotFoundError):
            return Problem(404, "not_found", str(exc)).response()
        if isinstance(exc, UsageError):
            return Problem(400, "bad_request", str(exc)).response()
        log.error("server error: %s", exc)
        return Problem(500, "internal", str(exc)).response()

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(SnapkitError, on_snapkit)
