"""Blob storage on the server: forms, and what an upload of held content costs."""

from __future__ import annotations

from pathlib import Path

from snapkit.server.storage import FormFiles, form_of
from snapkit.store.codec import Codec
from snapkit.store.repository import StoredBlob

CONTENT = b"sepal,petal,species\n" * 4000


def _zstd_and_raw() -> tuple[StoredBlob, StoredBlob]:
    packed = StoredBlob.from_bytes(CONTENT)
    assert packed.codec == Codec.ZSTD
    return packed, StoredBlob(packed.id, Codec.RAW, len(CONTENT), CONTENT)


def test_a_form_file_in_a_new_folder_is_durable_and_readable(tmp_path: Path) -> None:
    """write_durably makes the two-letter folder; nothing stays in tmp/."""
    _, raw = _zstd_and_raw()
    forms = FormFiles(tmp_path / "forms")
    digest = form_of(raw).digest
    assert digest is not None and not forms.path(raw.id, digest).parent.exists()

    forms.write(raw, digest)

    assert forms.read(raw.id, digest) == raw
    assert list(forms.tmp.iterdir()) == []
