"""``snapkit show``: what a snapshot holds, without loading any object.

What each pickle imports is read from its opcodes here, never copied from
the manifest: a forged snapshot can record harmless imports for a pickle
that calls anything. When the two differ, show says so loudly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from snapkit.cli._common import echo_json, human_size, json_option, open_source
from snapkit.errors import IntegrityError, NotFoundError, UsageError
from snapkit.snapshot import Snapshot, open_repository

__all__ = ["command", "describe", "open_for_reading", "render"]


def open_for_reading(source: str) -> Snapshot:
    """:func:`open_source`, with a plain word for a folder that is not a store."""
    try:
        return open_source(source)
    except NotFoundError as exc:
        folder = Path(source.split("#", 1)[0])
        if not folder.is_dir():
            raise
        try:
            open_repository(folder).close()
        except NotFoundError:
            raise UsageError(
                f"{str(folder)!r} is a folder but not a snapkit store. To capture "
                f"it: snapkit create {folder} -o FILE.snap; to compare it with a "
                f"snapshot: snapkit diff SNAP {folder}"
            ) from exc
        raise


def _object(snap: Snapshot, name: str, recorded: list[str]) -> dict[str, Any]:
    """The imports of one object: read from its pickle, checked against the record."""
    found: list[str] | None
    try:
        found, problem = snap.checked_imports(name)
    except (IntegrityError, NotFoundError) as exc:
        found, problem = None, f"cannot read its pickle: {exc}"
    return {
        "imports": found,
        "recorded_imports": recorded,
        "imports_match": found is not None and problem is None,
        "warning": problem,
    }


def describe(snap: Snapshot) -> dict[str, Any]:
    """The JSON document ``snapkit show --json`` prints.

    Reads each object's pickle stream (not its buffers) to list what loading
    it would import; nothing is unpickled.
    """
    m = snap.manifest
    lib = m.libraries
    objects = [
        {
            "name": o.name,
            "type": o.type,
            "raw_size": o.raw_size,
            "stored_size": o.stored_size,
            "buffers": len(o.buffers),
            **_object(snap, o.name, o.imports),
            "summary": o.summary,
        }
        for o in m.objects
    ]
    return {
        "id": snap.id,
        "name": m.name,
        "created": m.created,
        "host": m.host,
        "tags": m.tags,
        "repository": snap.repository.where,
        "objects": objects,
        "warnings": [
            f"object {o['name']}: {o['warning']}" for o in objects if o["warning"]
        ],
        "skipped": [{"name": s.name, "reason": s.reason} for s in m.skipped],
        "libraries": {
            "python": lib.python_version,
            "implementation": lib.implementation,
            "platform": lib.platform,
            "cloudpickle": lib.cloudpickle_version,
            "snapkit": lib.snapkit_version,
            "installed": len(lib.distributions),
            "required": [
                {"name": r, "version": lib.version_of(r)} for r in lib.required
            ],
        },
        "files": [
            {
                "path": f.path,
                "kind": f.kind,
                "mode": oct(f.mode),
                "size": f.size,
                "stored_size": f.stored_size,
                **({"target": f.target} if f.kind == "symlink" else {}),
            }
            for f in m.files
        ],
        "totals": {
            "raw_size": m.raw_size,
            "stored_size": sum(o.stored_size for o in m.objects)
            + sum(f.stored_size for f in m.files),
            "objects": len(m.objects),
            "files": len(m.files),
            "blobs": len(m.blob_ids()),
        },
    }


def render(doc: dict[str, Any], list_files: bool = True) -> list[str]:
    """The lines ``snapkit show`` prints for a :func:`describe` document."""
    lines = [
        f"snapshot {doc['id']}",
        f"  name     {doc['name']}",
        f"  created  {doc['created']} on {doc['host']}",
    ]
    if doc["tags"]:
        lines.append(f"  tags     {', '.join(doc['tags'])}")
    lib = doc["libraries"]
    lines.append(
        f"  python   {lib['implementation']} {lib['python']} ({lib['platform']}), "
        f"cloudpickle {lib['cloudpickle']}, snapkit {lib['snapkit']}"
    )

    lines += ["", f"objects ({len(doc['objects'])})"]
    for o in doc["objects"]:
        lines.append(
            f"  {o['name']:<20} {o['type']:<40} {human_size(o['raw_size']):>10} "
            f"-> {human_size(o['stored_size']):>10}"
        )
        if o["imports"]:
            lines.append(f"      imports: {', '.join(o['imports'])}")
        if o["warning"]:
            lines.append(f"      !! WARNING: {o['warning']}")
    for s in doc["skipped"]:
        lines.append(f"  {s['name']:<20} skipped: {s['reason']}")

    required = ", ".join(f"{r['name']}=={r['version']}" for r in lib["required"])
    lines += [
        "",
        f"libraries: {lib['installed']} installed, required: {required or 'none'}",
    ]

    lines += ["", f"files ({len(doc['files'])})"]
    if list_files:
        for f in doc["files"]:
            extra = f" -> {f['target']}" if f["kind"] == "symlink" else ""
            lines.append(
                f"  {f['mode']:>7} {human_size(f['size']):>10}  {f['path']}{extra}"
            )
    t = doc["totals"]
    lines += [
        "",
        f"total {human_size(t['raw_size'])} raw, {human_size(t['stored_size'])} "
        f"stored, {t['blobs']} blobs",
    ]
    return lines


@click.command("show")
@click.argument("source")
@click.option(
    "--files/--no-files",
    "list_files",
    default=True,
    help="List every file (default) or only the totals.",
)
@json_option
def command(source: str, list_files: bool, as_json: bool) -> None:
    """Show the objects, libraries and files of SOURCE without loading anything.

    SOURCE is an archive (FILE.snap, FILE.snap#ID), a store folder (DIR#ID)
    or a server snapshot id. The imports listed for each object are what
    loading it would import: read from the pickle, never executed, and
    flagged when they differ from what the manifest records.
    """
    with open_for_reading(source) as snap:
        doc = describe(snap)
    if as_json:
        echo_json(doc)
        return
    click.echo("\n".join(render(doc, list_files)))
