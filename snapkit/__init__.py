"""snapkit: capture a pruned Python workspace and pick it up again anywhere.

The public surface is what ``__all__`` lists; everything else may change.
Loading an object runs code from the snapshot: load only snapshots you trust.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from snapkit import errors
from snapkit._version import __version__
from snapkit.audit import audit
from snapkit.capture import CaptureReport, capture
from snapkit.diff import diff
from snapkit.restore import RestoreResult, restore
from snapkit.snapshot import Snapshot, open
from snapkit.store.archive import Archive
from snapkit.store.copy import CopyStats, copy
from snapkit.store.local import LocalStore
from snapkit.store.repository import Repository, SnapshotInfo

if TYPE_CHECKING:
    from snapkit.remote.client import Client

__all__ = [
    "Archive",
    "CaptureReport",
    "Client",
    "CopyStats",
    "LocalStore",
    "Repository",
    "RestoreResult",
    "Snapshot",
    "SnapshotInfo",
    "__version__",
    "audit",
    "capture",
    "copy",
    "diff",
    "errors",
    "open",
    "restore",
]

_LAZY = {
    "Client": ("snapkit.remote.client", "Client"),
    "diff": ("snapkit.diff", "diff"),
    "audit": ("snapkit.audit", "audit"),
}


def load_ipython_extension(ipython: Any) -> None:
    """Register the ``%snapkit`` magic; IPython calls this on ``%load_ext snapkit``."""
    # Imported here so that `import snapkit` never imports IPython.
    from snapkit.magic import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the ``%snapkit`` magic; IPython calls this on ``%unload_ext snapkit``."""
    from snapkit.magic import unload_ipython_extension as unload

    unload(ipython)


def __getattr__(name: str) -> Any:
    # The client needs httpx (the `client` extra); diff and audit pull in more
    # code than capture needs. Import them on first use.
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'snapkit' has no attribute {name!r}")
