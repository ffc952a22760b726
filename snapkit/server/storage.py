"""Blob storage for the server: each user's own form of each blob, kept once.

A blob's *form* is how its bytes are stored: the codec and the stored bytes.
The same content sent raw, or compressed at another level, is another form
of the same blob. Promise "owner only" covers forms too: what a user learns
about a blob (its stored size, its codec, the bytes served back) comes from
the form *that user* uploaded, never from whoever stored the content first.
So a form is named by the blob id and the SHA-256 of its stored bytes (its
*digest*, :class:`~snapkit.server.metadata.BlobForm`), which the metadata
records per user, and storage keeps every form somebody uploaded::

    DATA/packs/   a snapkit local store shared by every user: the first form
                  of each blob that reached the server
    DATA/forms/   every other form, one file each: ab/<id>-<digest>, holding
                  one blob record (the format of snapkit.remote); tmp/ holds
                  files being written

:meth:`BlobStorage.put_many` promises that every blob handed to it is durable
(written, fsynced, renamed) in the form it was given when the call returns,
which is what lets the caller record ownership afterwards. To keep the time
an upload takes from telling whether the content was stored already, a batch
whose forms are all held still writes and fsyncs as many bytes (to a scratch
file that is then deleted); see docs/design.md for the figures.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from snapkit.errors import IntegrityError
from snapkit.remote import encode_record, iter_records
from snapkit.server.metadata import BlobForm
from snapkit.store.pack import fsync_dir
from snapkit.store.repository import StoredBlob

__all__ = ["BlobStorage", "FormFiles", "form_of"]

log = logging.getLogger(__name__)


def form_of(blob: StoredBlob) -> BlobForm:
    """The form of a blob as given: its codec, stored size and digest."""
    digest = hashlib.sha256(blob.data).hexdigest()
    return BlobForm(int(blob.codec), blob.stored_size, digest)


class FormFiles:
    """The folder of forms that differ from the pack store's copy.

    Not locked: :class:`BlobStorage` serialises writes; reads of a file that
    is being replaced see the old file or the new one (rename is atomic).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        for stray in self.tmp.iterdir():
            log.warning(
                "forms %s: removing unfinished %s from an earlier crash",
                self.root,
                stray.name,
            )
            stray.unlink()

    def path(self, blob_id: str, digest: str) -> Path:
        return self.root / blob_id[:2] / f"{blob_id}-{digest}"

    def has(self, blob_id: str, digest: str) -> bool:
        return self.path(blob_id, digest).is_file()

    def write(self, blob: StoredBlob, digest: str) -> None:
        """Store one form durably: write, fsync, rename, fsync the folder."""
        # Imported here, like LocalStore below, for `snapkit server adduser`.
        from snapkit.store.local import write_durably

        write_durably(self.path(blob.id, digest), encode_record(blob), self.tmp)

    def scratch(self, parts: Sequence[bytes | memoryview]) -> None:
        """Write and fsync ``parts`` to a file, then delete it (timing cover)."""
        tmp = self.tmp / f"scratch-{secrets.token_hex(8)}.tmp"
        try:
            with open(tmp, "wb") as f:
                for part in parts:
                    f.write(part)
                f.flush()
                os.fsync(f.fileno())
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(self.tmp)

    def read(self, blob_id: str, digest: str) -> StoredBlob | None:
        """Return the stored form, checked against its digest; None if absent."""
        path = self.path(blob_id, digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        where = f"server form file {path}"
        blobs = list(iter_records(data, where))
        if (
            len(blobs) != 1
            or blobs[0].id != blob_id
            or hashlib.sha256(blobs[0].data).hexdigest() != digest
        ):
            raise IntegrityError(
                f"{where} does not hold blob {blob_id} in form {digest[:12]}; "
                "the file is damaged. Ask its owner to push the snapshot again"
            )
        return blobs[0]

    def entries(self) -> Iterator[tuple[str, str, Path]]:
        """Every stored form as ``(blob id, digest, path)``."""
        for folder in sorted(self.root.iterdir()):
            if folder == self.tmp or not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                blob_id, _, digest = path.name.partition("-")
                if len(blob_id) == 64 and len(digest) == 64:
                    yield blob_id, digest, path

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        fsync_dir(path.parent)


class BlobStorage:
    """Thread-safe access to the shared pack store and the form files.

    Reads go straight to the (thread-safe) store and files; writes hold a
    lock so one batch is stored and made durable as a unit.
    """

    def __init__(self, packs: str | Path, forms: str | Path) -> None:
        # Imported here so `snapkit server adduser` works on a tree without it.
        from snapkit.store.local import LocalStore

        self.root = Path(packs)
        self._lock = threading.Lock()
        self._store = LocalStore(self.root, create=True)
        self.forms = FormFiles(forms)

    def put_many(self, blobs: Sequence[StoredBlob]) -> dict[str, BlobForm]:
        """Make every blob durable in the form given; return each one's form.

        A blob the pack store lacks goes into a pack; a form that differs
        from the pack store's copy goes into its own file. Bytes of forms
        already held are written to a scratch file and fsynced all the same.
        """
        forms: dict[str, BlobForm] = {}
        held: list[bytes | memoryview] = []
        with self._lock:
            ids = [blob.id for blob in blobs]
            absent = self._store.missing(ids)
            pack_sizes = self._store.stored_sizes(ids)
            #: Forms this call put into a pack (an id may come twice).
            packed: dict[str, BlobForm] = {}
            for blob in blobs:
                form = forms[blob.id] = form_of(blob)
                assert form.digest is not None
                if blob.id in absent and blob.id not in packed:
                    self._store.put_raw(blob)
                    packed[blob.id] = form
                    continue
                if blob.id in packed:
                    same = packed[blob.id] == form
                else:
                    same = self._same_as_pack(blob, pack_sizes.get(blob.id))
                if same or self.forms.has(blob.id, form.digest):
                    held.append(blob.data)
                else:
                    self.forms.write(blob, form.digest)
            self._store.flush()
            if held:
                self.forms.scratch(held)
        return forms

    def _same_as_pack(self, blob: StoredBlob, pack_size: int | None) -> bool:
        """Whether the pack store's copy is ``blob`` in the very same form.

        ``pack_size`` is the copy's stored size from the pack index: the copy
        is read only when it matches, since another size is another form.
        """
        if pack_size != blob.stored_size:
            return False
        copy = self._store.get_raw(blob.id)
        return copy.codec == blob.codec and copy.data == blob.data

    def get(self, blob_id: str, form: BlobForm) -> StoredBlob:
        """Return the blob in exactly ``form``, checked against its digest.

        A form without a digest (recorded before forms were kept) is the
        pack store's copy, checked against the blob id instead. Raises
        NotFoundError if the pack store lacks the blob, IntegrityError if
        the form is neither in its file nor the pack store's copy (damage).
        """
        if form.digest is None:
            blob = self._store.get_raw(blob_id)
            blob.decode(f"server pack store: blob {blob_id}")
            return blob
        found = self.forms.read(blob_id, form.digest)
        if found is not None:
            return found
        blob = self._store.get_raw(blob_id)
        if hashlib.sha256(blob.data).hexdigest() != form.digest:
            raise IntegrityError(
                f"server storage: blob {blob_id} in form {form.digest[:12]} is "
                "neither in its form file nor the pack store's copy; the data "
                "folder is damaged. Push the snapshot that names it again"
            )
        return blob

    def close(self) -> None:
        with self._lock:
            self._store.close()
