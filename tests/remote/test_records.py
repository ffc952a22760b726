"""The blob record format: the streaming parser and the whole-body reader
must agree on every body, cut or whole."""

from __future__ import annotations

import random

import pytest

from snapkit.errors import FormatError
from snapkit.remote import RecordParser, encode_records, iter_records
from snapkit.store.repository import StoredBlob


def _blobs() -> list[StoredBlob]:
    rng = random.Random(7)
    return [
        StoredBlob.from_bytes(rng.randbytes(size))  # random: stays raw
        for size in (0, 1, 100, 5000)
    ] + [StoredBlob.from_bytes(b"compressible " * 400)]


def _streamed(body: bytes, step: int) -> list[StoredBlob]:
    parser = RecordParser("test")
    out: list[StoredBlob] = []
    for at in range(0, len(body), step):
        out += parser.feed(body[at : at + step])
    parser.close()
    return out


def test_both_readers_give_back_the_blobs() -> None:
    blobs = _blobs()
    body = encode_records(blobs)
    whole = list(iter_records(body))
    assert whole == blobs
    assert [bytes(b.data) for b in whole] == [bytes(b.data) for b in blobs]
    for step in (1, 7, 100, len(body)):
        assert _streamed(body, step) == blobs


def test_whole_body_blobs_are_views_of_the_body() -> None:
    body = encode_records(_blobs())
    for blob in iter_records(body):
        assert isinstance(blob.data, memoryview)
        assert blob.data.obj is body
        assert blob.decode("test") is not None  # verified against its id


def test_a_body_cut_inside_a_record_is_refused_by_both() -> None:
    blobs = _blobs()
    body = encode_records(blobs)
    # Cut at a record boundary, a body is only shorter, and valid.
    boundaries = {len(encode_records(blobs[:n])) for n in range(len(blobs) + 1)}
    for end in range(1, len(body)):
        cut = body[:end]
        if end in boundaries:
            assert list(iter_records(cut)) == _streamed(cut, 4096)
            continue
        with pytest.raises(FormatError, match="ends inside record"):
            list(iter_records(cut, "download"))
        with pytest.raises(FormatError, match="ends inside record"):
            _streamed(cut, 4096)


def test_a_hostile_header_is_refused_by_both() -> None:
    [blob] = [StoredBlob.from_bytes(b"x" * 100)]
    body = bytearray(encode_records([blob]))
    body[32] = 9  # unknown codec
    with pytest.raises(FormatError, match="unknown codec 9"):
        list(iter_records(bytes(body)))
    with pytest.raises(FormatError, match="unknown codec 9"):
        RecordParser().feed(bytes(body))
    body[32] = 0
    body[33:41] = (2**62).to_bytes(8, "big")  # raw size over the ceiling
    with pytest.raises(FormatError, match="over the ceiling"):
        list(iter_records(bytes(body)))
    with pytest.raises(FormatError, match="over the ceiling"):
        RecordParser().feed(bytes(body))
