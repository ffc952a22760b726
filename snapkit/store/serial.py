"""The one place snapkit talks to msgpack.

Packing uses fixed options (bin type for bytes, no floats narrowed, maps kept in
insertion order), so the same value always yields the same bytes; callers
build maps in a fixed key order. Unpacking has a ceiling on every length, on
nesting depth and on the total input size, and rejects trailing bytes.
"""

from __future__ import annotations

from typing import Any

import msgpack

from snapkit.errors import FormatError

__all__ = ["MAX_DEPTH", "MAX_DOCUMENT", "MAX_ITEMS", "pack", "unpack"]

#: Ceiling on one msgpack document (a manifest of a very large workspace).
MAX_DOCUMENT = 512 * 1024 * 1024
#: Ceiling on the entries of one array or map.
MAX_ITEMS = 10_000_000
#: Ceiling on one string or byte string.
MAX_STRING = 64 * 1024 * 1024
#: Ceiling on nesting depth: manifests are at most a handful of levels deep.
MAX_DEPTH = 32


def pack(value: Any) -> bytes:
    """Encode ``value`` deterministically."""
    return msgpack.packb(value, use_bin_type=True, strict_types=False)  # type: ignore[no-any-return]


def unpack(data: bytes | memoryview, where: str, max_size: int = MAX_DOCUMENT) -> Any:
    """Decode one msgpack document, enforcing every ceiling.

    ``where`` names the document in errors. Raises :class:`FormatError` for
    malformed input, trailing bytes, or any ceiling exceeded.
    """
    if len(data) > max_size:
        raise FormatError(
            f"{where}: {len(data)} bytes of msgpack is over the {max_size}-byte ceiling"
        )
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_str_len=MAX_STRING,
            max_bin_len=MAX_STRING,
            max_array_len=MAX_ITEMS,
            max_map_len=MAX_ITEMS,
            max_ext_len=0,
        )
    except msgpack.StackError as exc:
        raise FormatError(
            f"{where}: msgpack nesting deeper than the decoder's stack"
        ) from exc
    except msgpack.ExtraData as exc:
        raise FormatError(
            f"{where}: trailing bytes after the msgpack document"
        ) from exc
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        # ValueError covers truncation, bad UTF-8 and every length ceiling.
        raise FormatError(f"{where}: not a valid msgpack document ({exc})") from exc
    _check_depth(value, where)
    return value


def _check_depth(value: Any, where: str) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise FormatError(
                f"{where}: msgpack nesting deeper than {MAX_DEPTH} levels"
            )
        if isinstance(item, list):
            stack.extend((x, depth + 1) for x in item if isinstance(x, (list, dict)))
        elif isinstance(item, dict):
            # strict_map_key still lets bytes keys through; snapkit writes
            # only str keys, and other languages' readers expect them.
            for key in item:
                if not isinstance(key, str):
                    raise FormatError(
                        f"{where}: msgpack map key {key!r:.60} is not a string"
                    )
            stack.extend(
                (x, depth + 1) for x in item.values() if isinstance(x, (list, dict))
            )
