"""The ``--html`` audit report: one self-contained page, no network.

The page embeds the report's JSON document and a small script that lays out a
squarified treemap of the raw bytes (objects, then files grouped by top-level
folder) as absolutely positioned tiles, each with a tooltip. Totals and
findings are written into the page by Python from the same JSON the ``--json``
output prints, so the two always agree. When the script has drawn the map it
adds ``<div id="rendered" data-tiles="N" data-bytes="B" data-drawn-bytes="D">``
(B: the bytes the map stands for, equal to the raw total; D: the bytes of the
tiles it drew, equal to B, because even a group too small to see gets its
tiles); tests read that from a headless browser's DOM to know the script ran
without error.

Libraries take no bytes in a snapshot (they are recorded by name and
version), so they are listed beside the map rather than drawn in it.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import posixpath
import secrets
from collections import defaultdict
from typing import Any

from snapkit.audit.report import AuditReport, Item
from snapkit.diff import format_size
from snapkit.errors import ENVIRONMENT_ERRNOS, UsageError, storage_error

__all__ = [
    "MAX_TILES_PER_FOLDER",
    "check_html_path",
    "render_html",
    "treemap_data",
    "write_html",
]

#: Files beyond this many in one folder are drawn as one "N smaller files" tile.
MAX_TILES_PER_FOLDER = 200


def _leaf(item: Item) -> dict[str, Any]:
    return {
        "name": item.name,
        "size": item.raw_size,
        "tip": (
            f"{item.kind} {item.name}\n"
            + (f"type {item.type}\n" if item.type else "")
            + f"raw {format_size(item.raw_size)}, stored "
            f"{format_size(item.stored_size)}, {item.share * 100:.1f}% of raw\n"
            f"why: {item.why}"
        ),
    }


def treemap_data(report: AuditReport) -> dict[str, Any]:
    """Return the tree the page draws: groups of leaves sized by raw bytes.

    The leaf sizes add up to ``report.totals.raw`` exactly.
    """
    objects = [_leaf(o) for o in report.objects if o.raw_size > 0]
    by_folder: dict[str, list[Item]] = defaultdict(list)
    for f in report.files:
        if f.raw_size > 0:
            top = f.name.split("/", 1)[0] + "/" if "/" in f.name else "(top level)"
            by_folder[top].append(f)
    folders = []
    for name, items in sorted(
        by_folder.items(), key=lambda kv: -sum(i.raw_size for i in kv[1])
    ):
        leaves = [_leaf(i) for i in items[:MAX_TILES_PER_FOLDER]]
        rest = items[MAX_TILES_PER_FOLDER:]
        if rest:
            size = sum(i.raw_size for i in rest)
            leaves.append(
                {
                    "name": f"{len(rest)} smaller files",
                    "size": size,
                    "tip": f"{len(rest)} smaller files in {name}: {format_size(size)}",
                }
            )
        folders.append({"name": name, "children": leaves})
    groups = []
    if objects:
        groups.append({"name": "objects", "children": objects})
    for folder in folders:
        folder["name"] = f"files: {folder['name']}"
        groups.append(folder)
    return {"name": report.source, "children": groups}


def _script_json(value: Any) -> str:
    # Inside <script>, "</" could close the element; "<\/" is the same JSON.
    return json.dumps(value, sort_keys=True).replace("</", "<\\/")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def render_html(report: AuditReport) -> str:
    """Return the complete page as a string."""
    doc = report.to_json()
    totals = doc["totals"]
    total_rows = "\n".join(
        f'<tr><th>{_e(k)}</th><td data-key="{_e(k)}" data-value="{_e(v)}">'
        f"{_e(format_size(v) if k in _SIZE_KEYS else v)}</td></tr>"
        for k, v in totals.items()
    )
    finding_rows = (
        "\n".join(
            f'<tr class="finding"><td>{_e(f["code"])}</td><td>{_e(f["message"])}</td>'
            f"<td>{_e(format_size(f['bytes']))}</td><td>{_e(f['fix'])}</td></tr>"
            for f in doc["findings"]
        )
        or '<tr><td colspan="4">no findings</td></tr>'
    )
    violation_rows = "\n".join(
        f"<li>{_e(v.describe())}</li>" for v in report.violations
    )
    verdict = (
        f'<ul class="bad">{violation_rows}</ul>'
        if report.violations
        else '<p class="good">within every limit</p>'
    )
    libraries = "".join(f"<li>{_e(x)}</li>" for x in report.libraries)
    return _PAGE.format(
        title=_e(f"snapkit audit: {report.source}"),
        source=_e(report.source),
        snapshot=_e(report.snapshot_id or "not captured yet (dry run)"),
        total_rows=total_rows,
        verdict=verdict,
        finding_rows=finding_rows,
        library_count=len(report.libraries),
        libraries=libraries,
        tree=_script_json(treemap_data(report)),
        report=_script_json(doc),
        script=_SCRIPT,
        style=_STYLE,
    )


def check_html_path(path: str | os.PathLike[str]) -> None:
    """Raise :class:`~snapkit.errors.UsageError` unless ``path`` can be written.

    Checked before an audit starts, so a typo in ``--html`` does not cost a
    dry run: the folder must exist, and ``path`` must not be a folder.
    """
    target = os.fspath(path)
    folder = os.path.dirname(target) or "."
    if not os.path.isdir(folder):
        raise UsageError(
            f"--html {target}: folder {folder!r} does not exist; create it "
            "(mkdir -p) or write the report somewhere else"
        )
    if os.path.isdir(target):
        raise UsageError(
            f"--html {target} is a folder; give a file name such as "
            f"{posixpath.join(target, 'audit.html')}"
        )


def write_html(report: AuditReport, path: str | os.PathLike[str]) -> None:
    """Write the page to ``path``, replacing it atomically.

    Raises :class:`~snapkit.errors.StorageError` when the disk refuses (full,
    read-only, no access) and :class:`~snapkit.errors.UsageError` naming the
    path when it otherwise cannot be written; no temporary file is left
    behind, whatever fails.
    """
    target = os.fspath(path)
    check_html_path(target)
    page = render_html(report)
    # A fresh, short name in the same folder (so the rename is atomic),
    # created with "x" so it honours the umask like any file the user writes.
    tmp = os.path.join(
        os.path.dirname(target) or ".", f".snapkit-{secrets.token_hex(6)}.html.tmp"
    )
    replaced = False
    try:
        with open(tmp, "x", encoding="utf-8") as fh:
            fh.write(page)
        os.replace(tmp, target)
        replaced = True
    except OSError as exc:
        if exc.errno in ENVIRONMENT_ERRNOS:  # full, read-only, no access: exit 9
            raise storage_error(exc, f"writing the HTML report {target}") from exc
        raise UsageError(
            f"cannot write the HTML report to {target}: {exc.strerror or exc}; "
            "choose another path"
        ) from exc
    finally:
        if not replaced:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


_SIZE_KEYS = {
    "raw",
    "stored",
    "objects_raw",
    "objects_stored",
    "files_raw",
    "files_stored",
    "dedup_saved",
}

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 16px 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 18px 0 6px; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 2px 10px 2px 0; vertical-align: top; }
#totals td { text-align: right; }
#findings td { border-top: 1px solid #ddd; padding: 4px 10px 4px 0; }
.bad { color: #b00020; } .good { color: #1b7f3b; }
#map { position: relative; width: 100%; height: 520px; background: #f4f4f4;
       border: 1px solid #ccc; overflow: hidden; }
.group { position: absolute; box-sizing: border-box; border: 1px solid #fff; }
.group > .label { position: absolute; left: 3px; top: 1px; font-size: 11px;
                  font-weight: 600; color: #fff; white-space: nowrap; }
.tile { position: absolute; box-sizing: border-box; border: 1px solid #fff;
        overflow: hidden; font-size: 11px; color: #fff; padding: 1px 3px; }
.tile:hover { outline: 2px solid #000; z-index: 2; }
#side { display: flex; gap: 32px; }
#libraries { columns: 3; font-size: 12px; }
"""

_SCRIPT = r"""
(function () {
  "use strict";
  var tree = JSON.parse(document.getElementById("tree").textContent);
  var map = document.getElementById("map");
  var HUES = [210, 140, 30, 280, 0, 180, 60, 320, 100, 240];

  function sum(node) {
    if (!node.children) { return node.size; }
    node.size = 0;
    node.children.forEach(function (c) { node.size += sum(c); });
    return node.size;
  }

  // Squarified layout (Bruls, Huizing, van Wijk): fill rows along the
  // shorter side while the worst aspect ratio in the row keeps improving.
  function squarify(items, x, y, w, h) {
    var total = 0, out = [];
    items.forEach(function (i) { total += i.size; });
    if (total <= 0 || w <= 0 || h <= 0) { return out; }
    var scale = (w * h) / total;
    var nodes = items.filter(function (i) { return i.size > 0; })
      .sort(function (a, b) { return b.size - a.size; })
      .map(function (i) { return { item: i, area: i.size * scale }; });
    var row = [];
    function worst(r, side) {
      var s = 0, mx = 0, mn = Infinity;
      r.forEach(function (n) {
        s += n.area; mx = Math.max(mx, n.area); mn = Math.min(mn, n.area);
      });
      var s2 = s * s, side2 = side * side;
      return Math.max(side2 * mx / s2, s2 / (side2 * mn));
    }
    function place(r) {
      var s = 0;
      r.forEach(function (n) { s += n.area; });
      if (w >= h) {
        var cw = s / h, cy = y;
        r.forEach(function (n) {
          var ch = n.area / cw;
          out.push({ item: n.item, x: x, y: cy, w: cw, h: ch }); cy += ch;
        });
        x += cw; w -= cw;
      } else {
        var rh = s / w, cx = x;
        r.forEach(function (n) {
          var rw = n.area / rh;
          out.push({ item: n.item, x: cx, y: y, w: rw, h: rh }); cx += rw;
        });
        y += rh; h -= rh;
      }
    }
    nodes.forEach(function (n) {
      var side = Math.min(w, h);
      if (row.length === 0 || worst(row.concat([n]), side) <= worst(row, side)) {
        row.push(n);
      } else {
        place(row); row = [n];
      }
    });
    if (row.length) { place(row); }
    return out;
  }

  function box(cls, r) {
    var d = document.createElement("div");
    d.className = cls;
    d.style.left = r.x + "px"; d.style.top = r.y + "px";
    d.style.width = Math.max(r.w, 0) + "px"; d.style.height = Math.max(r.h, 0) + "px";
    return d;
  }

  sum(tree);
  var tiles = 0, bytes = 0;
  var groups = squarify(tree.children || [], 0, 0, map.clientWidth,
                        map.clientHeight);
  groups.forEach(function (g, gi) {
    var hue = HUES[gi % HUES.length];
    var el = box("group", g);
    el.style.background = "hsl(" + hue + ",45%,35%)";
    el.title = g.item.name;
    var label = document.createElement("span");
    label.className = "label";
    label.textContent = g.item.name;
    el.appendChild(label);
    map.appendChild(el);
    // Leaves go below the label; a group too small for one still lays
    // them out in its own box, so every byte is drawn (if only sub-pixel).
    var roomy = g.w > 8 && g.h > 24;
    var leaves = roomy
      ? squarify(g.item.children || [], g.x + 2, g.y + 16, g.w - 4, g.h - 18)
      : squarify(g.item.children || [], g.x, g.y, g.w, g.h);
    leaves.forEach(function (t, ti) {
      var tile = box("tile", t);
      var light = 40 + (ti * 7) % 30;
      tile.style.background = "hsl(" + hue + ",60%," + light + "%)";
      tile.title = t.item.tip;
      if (t.w > 40 && t.h > 14) { tile.textContent = t.item.name; }
      map.appendChild(tile);
      tiles += 1; bytes += t.item.size;
    });
  });
  var marker = document.createElement("div");
  marker.id = "rendered";
  marker.setAttribute("data-tiles", String(tiles));
  marker.setAttribute("data-bytes", String(tree.size));
  marker.setAttribute("data-drawn-bytes", String(bytes));
  marker.hidden = true;
  document.body.appendChild(marker);
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none';
      style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<h1>snapkit audit: {source}</h1>
<p>snapshot {snapshot}</p>
<div id="side">
<div><h2>Totals</h2><table id="totals">
{total_rows}
</table></div>
<div><h2>Budget</h2>{verdict}</div>
</div>
<h2>Where the bytes go (raw; hover a tile for details)</h2>
<div id="map"></div>
<h2>Findings</h2>
<table id="findings">
<tr><th>finding</th><th>what</th><th>at stake</th><th>suggested fix</th></tr>
{finding_rows}
</table>
<h2>Libraries ({library_count}, recorded by name and version, not stored)</h2>
<ul id="libraries">{libraries}</ul>
<script type="application/json" id="tree">{tree}</script>
<script type="application/json" id="report">{report}</script>
<script>{script}</script>
</body>
</html>
"""
