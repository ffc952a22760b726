"""Hypothesis strategies shared by the test suite.

Large inputs are drawn as a seed, a size and a flavour rather than as raw
bytes: Hypothesis shrinks a seed cheaply, and megabytes of drawn bytes would
make every example slow.
"""

from __future__ import annotations

import random

from hypothesis import strategies as st

from snapkit.store.chunker import SMALL
from snapkit.workspace.manifest import FileEntry, Manifest

#: Sizes around the interesting edges: empty, tiny, just under and over the
#: single-blob limit, and a few chunks' worth.
EDGE_SIZES = [0, 1, 63, 64, 65, 4096, SMALL - 1, SMALL, SMALL + 1, 3 * SMALL]


def make_bytes(seed: int, size: int, flavour: str) -> bytes:
    """Return ``size`` deterministic bytes of one flavour."""
    rng = random.Random(seed)
    if flavour == "random":
        return rng.randbytes(size)
    if flavour == "zeros":
        return bytes(size)
    # Text-like: repetitive words, so zstd compresses and chunks still vary.
    words = [rng.randbytes(rng.randint(1, 8)).hex() for _ in range(64)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words).encode() + b" "
    return bytes(out[:size])


@st.composite
def stream_bytes(draw: st.DrawFn, max_size: int = 3 * 1024 * 1024) -> bytes:
    """Bytes of any size up to ``max_size``: drawn directly when small."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=2048))
    size = draw(
        st.one_of(
            st.sampled_from([s for s in EDGE_SIZES if s <= max_size]),
            st.integers(0, max_size),
        )
    )
    seed = draw(st.integers(0, 2**32))
    flavour = draw(st.sampled_from(["random", "zeros", "text"]))
    return make_bytes(seed, size, flavour)


#: Several streams, so dedup between and inside them gets exercised.
streams = st.lists(stream_bytes(), min_size=1, max_size=4)

names = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40
)


# -- builders used by the store tests -----------------------------------------

CREATED = "2026-01-02T03:04:05.000000Z"


def file_manifest(
    name: str, files: dict[str, list[tuple[str, int]]], created: str = CREATED
) -> Manifest:
    """Return a manifest with no objects that names ``files`` and their chunks."""
    entries = [
        FileEntry(
            path=path,
            kind="file",
            mode=0o644,
            size=sum(s for _, s in refs),
            mtime_ns=1_700_000_000_000_000_000,
            blobs=list(refs),
        )
        for path, refs in files.items()
    ]
    return Manifest(name=name, created=created, host="test-host", files=entries)
