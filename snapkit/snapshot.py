"""A snapshot opened from a repository: its manifest, and lazy access to objects.

:func:`open` is the entry point. Reading an object with :meth:`Snapshot.load`
reads only that object's blobs, verifies each one, checks the recorded
environment against the running one, lists what the pickle imports (without
unpickling it), and only then unpickles it: loading a pickle runs code from
the snapshot, so load only snapshots you trust.

What a pickle imports is always read from its opcodes, never taken from the
manifest's ``imports`` list: a forged snapshot can be self-consistent (every
hash matches) and still record ``builtins:int`` for a pickle that calls
``os.system``. A difference between the two is logged as a WARNING.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import TracebackType
from typing import Any

from snapkit.errors import NotFoundError, UsageError
from snapkit.store.archive import Archive
from snapkit.store.chunker import BlobReader
from snapkit.store.local import LocalStore
from snapkit.store.repository import Repository
from snapkit.workspace import libraries as libs
from snapkit.workspace import objects as objs
from snapkit.workspace.manifest import Manifest, ObjectEntry

__all__ = ["Snapshot", "open", "open_repository"]

log = logging.getLogger(__name__)

Source = str | os.PathLike[str] | Repository


def open_repository(
    target: str | os.PathLike[str], mode: str = "r", create: bool = False
) -> Repository:
    """Open an archive (``*.snap`` or any file) or a local store directory."""
    path = Path(target)
    if path.is_dir():
        return LocalStore(path, create=create)
    if mode == "r" and not path.exists():
        raise NotFoundError(
            f"{path} does not exist; give the path of a .snap archive or a "
            "snapkit store folder"
        )
    return Archive(path, "a" if mode != "r" else "r")


class Snapshot:
    """One snapshot in one repository. Closing it closes the repository
    only if :func:`open` opened it."""

    def __init__(
        self,
        repository: Repository,
        manifest: Manifest,
        snapshot_id: str | None = None,
        owns_repository: bool = False,
    ) -> None:
        self.repository = repository
        self.manifest = manifest
        self.id = snapshot_id or manifest.id
        self._owns = owns_repository
        #: The strictest check passed so far: None, False (lenient) or True.
        self._env_checked: bool | None = None

    def __repr__(self) -> str:
        return (
            f"<Snapshot {self.id[:12]} {self.manifest.name!r} "
            f"objects={len(self.manifest.objects)} files={len(self.manifest.files)} "
            f"in {self.repository.where}>"
        )

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def objects(self) -> list[str]:
        """Names of the captured objects."""
        return [o.name for o in self.manifest.objects]

    def entry(self, name: str) -> ObjectEntry:
        """The manifest entry of object ``name``; NotFoundError if absent."""
        entry = self.manifest.object(name)
        if entry is None:
            raise NotFoundError(
                f"snapshot {self.id[:12]} has no object {name!r}; it holds "
                f"{', '.join(self.objects) or 'no objects'}"
            )
        return entry

    def read_object(self, name: str) -> tuple[bytearray, list[bytearray]]:
        """Return the verified pickle stream and buffers of ``name``, unloaded.

        Each is one allocation of its exact size, never copied again."""
        entry = self.entry(name)
        with BlobReader(self.repository) as reader:
            where = f"snapshot {self.id[:12]} object {name}"
            stream = reader.read(entry.pickle, where)
            buffers = [reader.read(b, where) for b in entry.buffers]
        return stream, buffers

    def read_pickle(self, name: str) -> bytearray:
        """Return the verified pickle stream of ``name`` alone, not its buffers."""
        entry = self.entry(name)
        with BlobReader(self.repository) as reader:
            return reader.read(entry.pickle, f"snapshot {self.id[:12]} object {name}")

    def imports(self, name: str) -> list[str]:
        """What loading ``name`` would import, read from its pickle opcodes.

        Reads only the pickle stream (buffers hold data, never references).
        The manifest's recorded list is not consulted; compare it yourself
        with ``entry(name).imports``.
        """
        return objs.scan_imports(self.read_pickle(name), name)

    def checked_imports(
        self, name: str, stream: bytes | bytearray | None = None
    ) -> tuple[list[str], str | None]:
        """What loading ``name`` would import, and what is wrong with its record.

        The imports are read from the pickle opcodes: from ``stream`` if the
        caller has read the verified stream already, else from
        :meth:`read_pickle` (which raises IntegrityError or NotFoundError).
        The second item is None when they are the manifest's ``imports``,
        else a message naming both lists: the snapshot is damaged or forged.
        """
        pickle = self.read_pickle(name) if stream is None else stream
        found = objs.scan_imports(pickle, name)
        recorded = self.entry(name).imports
        if set(found) == set(recorded):
            return found, None
        return found, (
            f"the manifest records imports {', '.join(recorded) or 'nothing'}, "
            f"but the pickle imports {', '.join(found) or 'nothing'}: the "
            "snapshot is damaged or forged; do not load it"
        )

    def check_environment(self, strict: bool = True) -> libs.EnvReport:
        """Compare recorded and running libraries; raise if required ones lack."""
        report = libs.check_environment(self.manifest.libraries, strict=strict)
        self._env_checked = strict or bool(self._env_checked)
        return report

    def load(self, name: str, strict: bool = True) -> Any:
        """Unpickle one object, reading only its blobs. Runs code: trust first."""
        # A lenient check earlier does not excuse a strict load now.
        if self._env_checked is None or (strict and not self._env_checked):
            self.check_environment(strict=strict)
        stream, buffers = self.read_object(name)
        imports, mismatch = self.checked_imports(name, stream)
        if mismatch is not None:
            log.warning(
                "loading object %s from snapshot %s: %s", name, self.id[:12], mismatch
            )
        else:
            log.info(
                "loading object %s from snapshot %s; its pickle imports: %s",
                name,
                self.id[:12],
                ", ".join(imports) or "nothing",
            )
        return objs.load_object(name, stream, [memoryview(b) for b in buffers])

    def load_all(
        self, names: list[str] | None = None, strict: bool = True
    ) -> dict[str, Any]:
        """Unpickle several objects (all by default) into a new dict."""
        chosen = self.objects if names is None else names
        for n in chosen:
            self.entry(n)
        return {n: self.load(n, strict=strict) for n in chosen}

    def close(self) -> None:
        if self._owns:
            self.repository.close()

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open(
    source: Source | Snapshot,
    snapshot_id: str | None = None,
    *,
    close_repository: bool = False,
) -> Snapshot:
    """Open a snapshot from an archive path, store folder or repository.

    ``snapshot_id`` may be a unique prefix; without it the archive or
    repository must hold exactly one snapshot, or the newest is taken when
    ``source`` is a path ending in ``#latest``. A path may also carry the id
    after ``#`` (``iris.snap#3fa2``). A repository given as ``source`` is
    closed with the snapshot only if ``close_repository`` is true; one opened
    here from a path always is.
    """
    if isinstance(source, Snapshot):
        return source
    owns = close_repository
    if isinstance(source, Repository):
        repo = source
    else:
        text = os.fspath(source)
        if "#" in text and snapshot_id is None:
            text, snapshot_id = text.rsplit("#", 1)
        repo = open_repository(text)
        owns = True
    try:
        if snapshot_id is None or snapshot_id == "latest":
            infos = repo.snapshots()
            if not infos:
                raise NotFoundError(f"{repo.where} holds no snapshot")
            if len(infos) > 1 and snapshot_id is None:
                listing = ", ".join(f"{i.id[:12]} ({i.name})" for i in infos[-5:])
                raise UsageError(
                    f"{repo.where} holds {len(infos)} snapshots; say which one "
                    f"(e.g. PATH#ID or PATH#latest): {listing}"
                )
            snapshot_id = infos[-1].id
        manifest = repo.snapshot(snapshot_id)
    except BaseException:
        if owns:
            repo.close()
        raise
    return Snapshot(repo, manifest, manifest.id, owns_repository=owns)
