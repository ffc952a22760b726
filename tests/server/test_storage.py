"""Blob storage on the server: forms, and what an upload of held content costs."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from snapkit.errors import IntegrityError
from snapkit.server.storage import BlobStorage, FormFiles, form_of
from snapkit.store.codec import Codec
from snapkit.store.local import LocalStore
from snapkit.store.repository import StoredBlob

CONTENT = b"sepal,petal,species\n" * 4000


def _zstd_and_raw() -> tuple[StoredBlob, StoredBlob]:
    packed = StoredBlob.from_bytes(CONTENT)
    assert packed.codec == Codec.ZSTD
    return packed, StoredBlob(packed.id, Codec.RAW, len(CONTENT), CONTENT)


class _CountingStore(LocalStore):
    """A real local store that counts the calls asking what it lacks."""

    missing_calls = 0

    def missing(self, ids: Iterable[str]) -> set[str]:
        self.missing_calls += 1
        return super().missing(ids)


@pytest.fixture
def storage(tmp_path: Path) -> Iterable[BlobStorage]:
    store = BlobStorage(tmp_path / "packs", tmp_path / "forms")
    yield store
    store.close()


def test_other_form_is_kept_without_reading_the_pack_copy(
    storage: BlobStorage, tmp_path: Path
) -> None:
    """Another stored size is another form: the pack copy is not read to see it.

    The pack is cut short after the upload of the compressed form, so any
    read of that copy fails; the raw upload must not need one."""
    packed, raw = _zstd_and_raw()
    storage.put_many([packed])
    (pack,) = (tmp_path / "packs" / "packs").glob("*/*.pack")
    with open(pack, "r+b") as f:
        f.truncate(16)
    with pytest.raises(IntegrityError, match="cut short"):
        storage.get(packed.id, form_of(packed))

    assert storage.put_many([raw]) == {raw.id: form_of(raw)}
    assert [d for _, d, _ in storage.forms.entries()] == [form_of(raw).digest]
    assert storage.get(raw.id, form_of(raw)) == raw


def test_same_form_is_read_and_recognised(storage: BlobStorage) -> None:
    """The same stored size does read the copy: the very same bytes add nothing."""
    packed, _ = _zstd_and_raw()
    storage.put_many([packed])
    storage.put_many([packed])
    assert list(storage.forms.entries()) == []


def test_one_question_to_the_pack_store_per_batch(tmp_path: Path) -> None:
    """put_many asks the pack store what it lacks once per batch, not per blob."""
    storage = BlobStorage(tmp_path / "packs", tmp_path / "forms")
    storage._store.close()
    counting = storage._store = _CountingStore(tmp_path / "packs")
    blobs = [StoredBlob.from_bytes(bytes([i]) * 5000) for i in range(20)]
    try:
        storage.put_many(blobs[:10])
        storage.put_many(blobs)
    finally:
        storage.close()
    assert counting.missing_calls == 2
    with LocalStore(tmp_path / "packs") as store:
        assert store.missing(b.id for b in blobs) == set()


def test_an_id_twice_in_one_batch(tmp_path: Path) -> None:
    """The same form twice is stored once; another form of the same blob in
    the same batch still gets its own file."""
    packed, raw = _zstd_and_raw()
    once = BlobStorage(tmp_path / "a" / "packs", tmp_path / "a" / "forms")
    twice = BlobStorage(tmp_path / "b" / "packs", tmp_path / "b" / "forms")
    try:
        once.put_many([packed, packed])
        assert list(once.forms.entries()) == []
        twice.put_many([packed, raw])
        assert [d for _, d, _ in twice.forms.entries()] == [form_of(raw).digest]
        assert twice.get(raw.id, form_of(raw)) == raw
        assert twice.get(packed.id, form_of(packed)) == packed
    finally:
        once.close()
        twice.close()


def test_a_form_file_in_a_new_folder_is_durable_and_readable(tmp_path: Path) -> None:
    """write_durably makes the two-letter folder; nothing stays in tmp/."""
    _, raw = _zstd_and_raw()
    forms = FormFiles(tmp_path / "forms")
    digest = form_of(raw).digest
    assert digest is not None and not forms.path(raw.id, digest).parent.exists()

    forms.write(raw, digest)

    assert forms.read(raw.id, digest) == raw
    assert list(forms.tmp.iterdir()) == []
