"""Where snapkit keeps caches that can be thrown away at any time.

``$SNAPKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/snapkit`` (an absolute
``XDG_CACHE_HOME`` only, as the XDG spec says), else ``~/.cache/snapkit``.
Nothing in it is needed for correctness: a missing, stale or unreadable cache
only costs the time to rebuild it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """Return the base folder of snapkit's caches (it may not exist yet)."""
    override = os.environ.get("SNAPKIT_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    cache_home = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return cache_home / "snapkit"
