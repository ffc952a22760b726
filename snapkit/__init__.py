"""snapkit: capture a pruned Python workspace and pick it up again anywhere."""

from snapkit._version import __version__

__all__ = ["__version__"]
