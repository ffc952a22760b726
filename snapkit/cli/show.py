"""``snapkit show``: what a snapshot holds, without loading any object."""

from __future__ import annotations

from typing import Any

import click

from snapkit.cli._common import echo_json, human_size, json_option, open_source
from snapkit.snapshot import Snapshot


def describe(snap: Snapshot) -> dict[str, Any]:
    """The JSON document ``snapkit show --json`` prints."""
    m = snap.manifest
    lib = m.libraries
    return {
        "id": snap.id,
        "name": m.name,
        "created": m.created,
        "host": m.host,
        "tags": m.tags,
        "repository": snap.repository.where,
        "objects": [
            {
                "name": o.name,
                "type": o.type,
                "raw_size": o.raw_size,
                "stored_size": o.stored_size,
                "buffers": len(o.buffers),
                "imports": o.imports,
                "summary": o.summary,
            }
            for o in m.objects
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
    loading it would import: read from the pickle, never executed.
    """
    with open_source(source) as snap:
        doc = describe(snap)
    if as_json:
        echo_json(doc)
        return
    click.echo(f"snapshot {doc['id']}")
    click.echo(f"  name     {doc['name']}")
    click.echo(f"  created  {doc['created']} on {doc['host']}")
    if doc["tags"]:
        click.echo(f"  tags     {', '.join(doc['tags'])}")
    lib = doc["libraries"]
    click.echo(
        f"  python   {lib['implementation']} {lib['python']} ({lib['platform']}), "
        f"cloudpickle {lib['cloudpickle']}, snapkit {lib['snapkit']}"
    )
    click.echo(f"\nobjects ({len(doc['objects'])})")
    for o in doc["objects"]:
        click.echo(
            f"  {o['name']:<20} {o['type']:<40} {human_size(o['raw_size']):>10} "
            f"-> {human_size(o['stored_size']):>10}"
        )
        if o["imports"]:
            click.echo(f"      imports: {', '.join(o['imports'])}")
    for s in doc["skipped"]:
        click.echo(f"  {s['name']:<20} skipped: {s['reason']}")
    required = ", ".join(f"{r['name']}=={r['version']}" for r in lib["required"])
    click.echo(
        f"\nlibraries: {lib['installed']} installed, required: {required or 'none'}"
    )
    click.echo(f"\nfiles ({len(doc['files'])})")
    if list_files:
        for f in doc["files"]:
            extra = f" -> {f['target']}" if f["kind"] == "symlink" else ""
            click.echo(
                f"  {f['mode']:>7} {human_size(f['size']):>10}  {f['path']}{extra}"
            )
    t = doc["totals"]
    click.echo(
        f"\ntotal {human_size(t['raw_size'])} raw, {human_size(t['stored_size'])} "
        f"stored, {t['blobs']} blobs"
    )
