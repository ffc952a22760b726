"""Cut byte streams into blobs and move them in parallel.

Large streams are cut with FastCDC 2020 (the compiled ``pyfastcdc`` package,
a port of the fastcdc-rs ``v2020`` chunker), so an insert in the
middle of a file or array changes only the chunks around it. Inputs under
:data:`SMALL` bytes stay one blob. The chunker releases the GIL while it scans,
so cutting the next chunks overlaps hashing and compressing the last ones.

:class:`BlobWriter` hashes the chunks in a thread pool, asks the destination
which ids it lacks (one call per batch, which is what makes a remote
destination cheap), compresses only those, and hands them to the repository
in order. Chunks are ``memoryview`` slices of the caller's buffer, never
copies; at most :data:`BATCH` chunks are in flight, so memory stays bounded
whatever the size of the input. hashlib and zstandard release the GIL, so the
pool really runs in parallel.
"""

from __future__ import annotations

import mmap
import os
import traceback
import warnings
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

with warnings.catch_warnings():
    # Without its compiled extension pyfastcdc warns and falls back to pure
    # Python; cut() refuses that below with a message that says what to do.
    warnings.simplefilter("ignore")
    import pyfastcdc

from snapkit.errors import EnvironmentMismatchError, IntegrityError
from snapkit.store import codec
from snapkit.store.repository import Repository, StoredBlob
from snapkit.workspace.manifest import BlobRef

__all__ = [
    "AVG_CHUNK",
    "COMPILED",
    "MAX_CHUNK",
    "MIN_CHUNK",
    "NORMALIZATION",
    "SMALL",
    "BlobReader",
    "BlobWriter",
    "WriteResult",
    "cut",
]

MIN_CHUNK = 256 * 1024
#: FastCDC's "average" parameter. The chunker skips MIN_CHUNK bytes before
#: it looks for a cut, so chunks come out larger than this: with
#: NORMALIZATION 2 the mean is 0.61 MiB on random data.
AVG_CHUNK = 512 * 1024
MAX_CHUNK = 4 * 1024 * 1024
#: FastCDC's normalized chunking level: 2 keeps chunk sizes close to the
#: mean, so a small edit rarely costs a large chunk.
NORMALIZATION: Final = 2
#: Streams shorter than this are stored as one blob.
SMALL = 512 * 1024
#: Chunks hashed ahead and asked about in one ``missing()`` call.
BATCH = 16


#: Whether pyfastcdc loaded its compiled chunker (not the pure-Python one).
COMPILED = pyfastcdc.FastCDC.__module__.startswith("pyfastcdc.cy")
_CDC = pyfastcdc.FastCDC(
    AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK, normalized_chunking=NORMALIZATION
)


def default_workers() -> int:
    return max(2, min(8, os.cpu_count() or 2))


def cut(view: memoryview) -> Generator[memoryview, None, None]:
    """Yield consecutive slices of ``view`` that together cover it exactly."""
    if view.nbytes < SMALL:
        yield view
        return
    if not COMPILED:
        raise EnvironmentMismatchError(
            "pyfastcdc has no compiled chunker on this machine, and its pure "
            f"Python fallback would take minutes per GiB (cutting {view.nbytes} "
            "bytes); reinstall it from a wheel with `pip install "
            "--force-reinstall --only-binary=:all: pyfastcdc`, or install a C "
            "compiler and the Python headers and reinstall it"
        )
    # One FastCDC object is shared: it holds only the fixed parameters and
    # gear tables, and cut_buf keeps its position in the returned iterator.
    for chunk in _CDC.cut_buf(view):
        yield chunk.data  # already a slice of ``view``, no copy


def as_bytes_view(data: bytes | bytearray | memoryview) -> memoryview:
    """Return a flat, byte-formatted view of ``data`` without copying it."""
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


@dataclass(frozen=True)
class _Pending:
    """A hashed chunk on its way out: compressing if ``encode`` is set, else
    already stored (here or in the destination)."""

    size: int
    id: str
    encode: Future[StoredBlob] | None


@dataclass
class WriteResult:
    """The chunks of one stream and what they cost."""

    refs: list[BlobRef] = field(default_factory=list)
    stored_size: int = 0
    #: Bytes that had to be compressed and written (the destination lacked them).
    new_bytes: int = 0


class BlobWriter:
    """Writes streams into a repository as content-defined, deduplicated blobs.

    With ``repository=None`` nothing is written: every chunk is still hashed
    and compressed, to measure what a capture would cost (a dry run).
    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        repository: Repository | None,
        level: int = codec.DEFAULT_LEVEL,
        workers: int | None = None,
    ) -> None:
        self.repository = repository
        self.level = codec.check_level(level)
        # Raw chunks go out as views of the input, not copies, when nothing
        # keeps them past put_raw (a dry run keeps nothing at all).
        self._copy = repository is not None and repository.keeps_blob_data
        self._pool = ThreadPoolExecutor(
            max_workers=workers or default_workers(), thread_name_prefix="snapkit-chunk"
        )
        #: Stored size of every blob this writer has seen, written or found.
        self.sizes: dict[str, int] = {}
        self.raw_bytes = 0
        self.new_bytes = 0

    def write(self, data: bytes | bytearray | memoryview) -> WriteResult:
        """Store one stream; return its chunk list in order.

        The stages overlap: while one batch is being compressed, the next is
        hashed and the one before is handed to the repository, so the pool
        never waits on a batch barrier. At most about ``4 * BATCH`` chunks
        are in flight; each is a view of ``data`` until it is compressed.
        """
        result = WriteResult()
        hashing: deque[tuple[memoryview, Future[str]]] = deque()
        encoding: deque[_Pending] = deque()
        in_flight: set[str] = set()
        pieces = cut(as_bytes_view(data))
        try:
            for piece in pieces:
                hashing.append((piece, self._pool.submit(codec.blob_id, piece)))
                # Ask about the older batch while the newer one hashes, so
                # the pool is never left waiting for the next cut.
                if len(hashing) >= 2 * BATCH:
                    self._ask(hashing, BATCH, encoding, in_flight)
                    self._drain(encoding, in_flight, result, keep=2 * BATCH)
            self._ask(hashing, len(hashing), encoding, in_flight)
            self._drain(encoding, in_flight, result, keep=0)
            return result
        except BaseException:
            # Let no task go on reading ``data`` after we return: the caller
            # may unmap it (write_file) or reuse the buffer.
            started: list[Future[Any]] = [fut for _, fut in hashing]
            started += [p.encode for p in encoding if p.encode is not None]
            for fut in started:
                fut.cancel()
            wait(started)
            hashing.clear()
            encoding.clear()
            raise
        finally:
            pieces.close()

    def _ask(
        self,
        hashing: deque[tuple[memoryview, Future[str]]],
        count: int,
        encoding: deque[_Pending],
        in_flight: set[str],
    ) -> None:
        """Ask the destination about the oldest ``count`` hashed chunks;
        start compressing what it lacks."""
        batch = []
        for _ in range(count):
            piece, fut = hashing.popleft()
            batch.append((piece, fut.result()))
        unknown = {bid for _, bid in batch if bid not in self.sizes} - in_flight
        if self.repository is not None and unknown:
            lacking = self.repository.missing(unknown)
            self.sizes.update(self.repository.stored_sizes(unknown - lacking))
        else:
            lacking = unknown
        for piece, bid in batch:
            encode: Future[StoredBlob] | None = None
            if bid in lacking and bid not in in_flight:
                encode = self._pool.submit(
                    StoredBlob.from_bytes, piece, self.level, bid, self._copy
                )
                in_flight.add(bid)
            encoding.append(_Pending(piece.nbytes, bid, encode))

    def _drain(
        self,
        encoding: deque[_Pending],
        in_flight: set[str],
        result: WriteResult,
        keep: int,
    ) -> None:
        """Hand finished blobs to the repository in order, leaving at most
        ``keep`` pending (waiting for the oldest beyond that)."""
        while encoding:
            head = encoding[0]
            if head.encode is not None:
                if len(encoding) <= keep and not head.encode.done():
                    return
                blob = head.encode.result()
                if self.repository is not None:
                    self.repository.put_raw(blob)
                self.sizes[head.id] = blob.stored_size
                in_flight.discard(head.id)
                result.new_bytes += blob.raw_size
                self.new_bytes += blob.raw_size
            encoding.popleft()
            result.refs.append((head.id, head.size))
            result.stored_size += self.sizes[head.id]
            self.raw_bytes += head.size

    def write_file(self, path: str | os.PathLike[str]) -> WriteResult:
        """Store a file's content, mapped into memory rather than read into it."""
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                return self.write(b"")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                view = memoryview(mapped)
                try:
                    return self.write(view)
                except BaseException as exc:
                    # The failed frames still hold slices of the mapping, and
                    # a mapping with live slices cannot be closed: drop their
                    # locals (the traceback keeps its lines), in the chained
                    # errors too (a StorageError raised from the OSError of
                    # the write that held a raw chunk's view).
                    _clear_frames(exc)
                    raise
                finally:
                    view.release()

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _clear_frames(exc: BaseException) -> None:
    """Clear the locals of every frame in ``exc``'s traceback and in those of
    the errors it was raised from or during."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        pending += [current.__cause__, current.__context__]


class BlobReader:
    """Reads chunk lists back, decoding and verifying ahead in a thread pool."""

    def __init__(self, repository: Repository, workers: int | None = None) -> None:
        self.repository = repository
        self._workers = workers or default_workers()
        self._pool = ThreadPoolExecutor(
            max_workers=self._workers, thread_name_prefix="snapkit-read"
        )

    def iter_chunks(self, refs: Sequence[BlobRef], where: str = "") -> Iterator[bytes]:
        """Yield the verified bytes of each chunk, in order.

        A repository that can fetch many blobs per request (the server
        client's ``get_many``) is read that way: one request per batch of
        blobs instead of one per blob, the next batch asked for while the
        pool still decodes the last.
        """
        get_many = getattr(self.repository, "get_many", None)
        if get_many is not None and len(refs) > 1:
            yield from self._iter_batched(get_many, refs, where)
            return
        ahead = 2 * self._workers
        pending: list[Future[bytes]] = []
        for bid, size in refs:
            pending.append(self._pool.submit(self._get, bid, size, where))
            if len(pending) > ahead:
                yield pending.pop(0).result()
        for fut in pending:
            yield fut.result()

    def _iter_batched(
        self,
        get_many: Callable[[Sequence[str]], Iterator[StoredBlob]],
        refs: Sequence[BlobRef],
        where: str,
    ) -> Iterator[bytes]:
        order = list(dict.fromkeys(bid for bid, _ in refs))
        uses = Counter(bid for bid, _ in refs)
        fetched = iter(get_many(order))
        #: Decodes of ids that a later ref names again.
        shared: dict[str, Future[bytes]] = {}
        pending: deque[Future[bytes]] = deque()
        ahead = max(2 * self._workers, BATCH * 3)
        for bid, size in refs:
            fut = shared.get(bid)
            if fut is None:
                blob = next(fetched)
                if blob.id != bid:
                    raise IntegrityError(
                        f"{self.repository.where}: {where} asked for blob {bid}, "
                        f"got {blob.id}; try again"
                    )
                fut = self._pool.submit(self._decode, blob, size, where)
                shared[bid] = fut
            uses[bid] -= 1
            if not uses[bid]:
                del shared[bid]
            pending.append(fut)
            while len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def _decode(self, blob: StoredBlob, size: int, where: str) -> bytes:
        data = blob.decode(f"{self.repository.where}: blob {blob.id}")
        return self._check_size(data, blob.id, size, where)

    def _get(self, blob_id: str, size: int, where: str) -> bytes:
        return self._check_size(self.repository.get(blob_id), blob_id, size, where)

    def _check_size(self, data: bytes, blob_id: str, size: int, where: str) -> bytes:
        if len(data) != size:
            raise IntegrityError(
                f"{self.repository.where}: {where} blob {blob_id} has {len(data)} "
                f"bytes, the manifest says {size}; run `snapkit verify`"
            )
        return data

    def read(self, refs: Sequence[BlobRef], where: str = "") -> bytearray:
        """Return the whole stream; one allocation of its exact size."""
        out = bytearray(sum(s for _, s in refs))
        at = 0
        for data in self.iter_chunks(refs, where):
            out[at : at + len(data)] = data
            at += len(data)
        return out

    def write_to(self, refs: Sequence[BlobRef], path: Path, where: str = "") -> None:
        """Stream the chunks into an open-for-writing path."""
        with open(path, "wb") as f:
            for data in self.iter_chunks(refs, where):
                f.write(data)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
