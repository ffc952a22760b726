"""Run the ``snapkit`` CLI in a child whose writes the kernel refuses.

``RLIMIT_FSIZE`` caps the size of any file the child writes; with SIGXFSZ
ignored, a write past the cap fails with EFBIG, which snapkit handles like a
full disk (ENOSPC). No mount, no root, no mock: the real system call fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_CHILD = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from snapkit.cli import main
sys.exit(main(sys.argv[2:]))
"""


def snapkit_with_file_limit(
    limit: int, *args: str | os.PathLike[str], cache: Path
) -> subprocess.CompletedProcess[str]:
    """``snapkit ARGS`` where no file may grow past ``limit`` bytes."""
    return subprocess.run(
        [sys.executable, "-c", _CHILD, str(limit), *map(os.fspath, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SNAPKIT_CACHE_DIR": str(cache)},
    )
