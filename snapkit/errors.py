"""The one exception tree of snapkit.

Every error snapkit raises on purpose is a :class:`SnapkitError`. Each family
maps to one CLI exit code, so scripts can branch on the code without parsing
text. Where a family has an obvious builtin twin it subclasses it too, so
``except ValueError`` keeps working for callers who do not know snapkit::

    SnapkitError                                  exit
    │                                               10  unexpected (a bug: report it)
    ├── UsageError (ValueError)                      2  bad argument or option
    │   └── ConfigError                              2  unreadable config / env
    ├── NotFoundError (LookupError)                  4  no such snapshot, blob, file
    │   └── AmbiguousIdError                         4  id prefix matches several
    ├── IntegrityError                               3  bytes do not match their id
    │   └── FormatError                              3  not our format, or over a limit
    ├── EnvironmentMismatchError                     5  required libraries missing
    ├── ObjectError                                  6  an object will not (un)pickle
    ├── RestoreError                                 7  restore refused to write
    │   ├── UnsafePathError                          7  path escapes the root
    │   └── OverwriteError                           7  would clobber a changed file
    ├── RemoteError                                  8  the server said no / unreachable
    │   ├── AuthError                                8  bad or missing token
    │   └── ConflictError                            8  commit names blobs not uploaded
    ├── StorageError (OSError)                       9  disk full, read-only, no access
    └── BudgetExceededError                          1  audit found a limit exceeded

Messages follow one shape: what failed, the offending value, what to do next.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "EXIT_CODES",
    "AmbiguousIdError",
    "AuthError",
    "BudgetExceededError",
    "ConfigError",
    "ConflictError",
    "EnvironmentMismatchError",
    "FormatError",
    "IntegrityError",
    "NotFoundError",
    "ObjectError",
    "OverwriteError",
    "RemoteError",
    "RestoreError",
    "SnapkitError",
    "StorageError",
    "UnsafePathError",
    "UsageError",
    "exit_code_for",
    "os_errors",
    "storage_error",
]


class SnapkitError(Exception):
    """Base of every error snapkit raises on purpose."""

    exit_code = 10


class UsageError(SnapkitError, ValueError):
    """An argument, option or input file given by the user is wrong."""

    exit_code = 2


class ConfigError(UsageError):
    """The config file or an environment variable cannot be used."""


class NotFoundError(SnapkitError, LookupError):
    """A snapshot, blob, object or file that was asked for does not exist.

    On the server, another user's snapshot raises exactly this, with the same
    message as an id that was never created.
    """

    exit_code = 4


class AmbiguousIdError(NotFoundError):
    """An abbreviated snapshot id matches more than one snapshot."""


class IntegrityError(SnapkitError):
    """Stored bytes do not match what they claim to be.

    Raised for a blob whose SHA-256 differs from its id, a truncated archive,
    an index that fails its checksum: anything that means the data is damaged.
    Never caught and ignored by snapkit itself.
    """

    exit_code = 3


class FormatError(IntegrityError):
    """Bytes are not in a format snapkit reads, or exceed a decoder ceiling."""


class EnvironmentMismatchError(SnapkitError):
    """The running interpreter lacks libraries the snapshot's objects need,
    or snapkit's own compiled chunker (``pyfastcdc``) did not load."""

    exit_code = 5


class ObjectError(SnapkitError):
    """An object cannot be pickled at capture, or unpickled at restore."""

    exit_code = 6
    #: The bare cause (``model.callbacks[2]: cannot pickle ...``) where known,
    #: without the advice the message adds; what a manifest records.
    reason: str | None = None


class RestoreError(SnapkitError):
    """Restore refused to write something."""

    exit_code = 7


class UnsafePathError(RestoreError):
    """A path in a manifest would land outside the restore root."""


class OverwriteError(RestoreError, FileExistsError):
    """Restore would overwrite a file that differs from the snapshot."""


class RemoteError(SnapkitError):
    """The snapshot server refused a request or could not be reached."""

    exit_code = 8


class AuthError(RemoteError, PermissionError):
    """The server did not accept the token."""


class ConflictError(RemoteError):
    """The server refused a commit because blobs it names are not uploaded.

    ``missing`` lists their ids, as the server gave them.
    """

    def __init__(self, message: str, missing: list[str] | None = None) -> None:
        super().__init__(message)
        self.missing: list[str] = list(missing or [])


class StorageError(SnapkitError, OSError):
    """The operating system refused to read or write: the disk is full, the
    folder is read-only or not ours, too many files are open. Not damage to
    a snapshot, and not a bug: free space or fix permissions, then retry."""

    exit_code = 9


#: errno values that describe the machine, not a bug in snapkit.
ENVIRONMENT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.EIO,
        errno.EMFILE,
        errno.ENFILE,
        errno.EFBIG,
    }
)

_ADVICE = {
    errno.ENOSPC: "free some space (or write elsewhere) and run it again",
    errno.EDQUOT: "your disk quota is used up; free some space and run it again",
    errno.EROFS: "the file system is read-only; write somewhere else",
    errno.EACCES: "check the permissions of that path, or write somewhere else",
    errno.EPERM: "check the permissions of that path, or write somewhere else",
    errno.EFBIG: "the file system refuses a file this large; write elsewhere",
}


def storage_error(exc: OSError, doing: str) -> StorageError:
    """A :class:`StorageError` for ``exc``, raised while ``doing`` (a phrase
    such as ``"writing archive a.snap"``), with what to do next."""
    what = exc.strerror or str(exc)
    name = f" ({exc.filename})" if exc.filename else ""
    advice = _ADVICE.get(exc.errno or 0, "check the disk and run it again")
    error = StorageError(f"{doing}{name}: {what}; {advice}")
    error.errno = exc.errno
    return error


@contextmanager
def os_errors(doing: str) -> Iterator[None]:
    """Turn an environmental :class:`OSError` raised inside into a
    :class:`StorageError` that says what was being done; others pass."""
    try:
        yield
    except StorageError:
        raise
    except OSError as exc:
        if exc.errno in ENVIRONMENT_ERRNOS:
            raise storage_error(exc, doing) from exc
        raise


class BudgetExceededError(SnapkitError):
    """An audit found a size above one of its limits."""

    exit_code = 1


EXIT_CODES: dict[type[SnapkitError], int] = {
    cls: cls.exit_code
    for cls in (
        SnapkitError,
        UsageError,
        NotFoundError,
        IntegrityError,
        EnvironmentMismatchError,
        ObjectError,
        RestoreError,
        RemoteError,
        StorageError,
        BudgetExceededError,
    )
}


def exit_code_for(error: BaseException) -> int:
    """Return the CLI exit code for ``error`` (10 for anything unexpected)."""
    if isinstance(error, SnapkitError):
        return error.exit_code
    if isinstance(error, OSError) and error.errno in ENVIRONMENT_ERRNOS:
        return StorageError.exit_code
    return SnapkitError.exit_code
