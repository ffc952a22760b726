"""The --html report renders in headless Chromium and agrees with the JSON."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from snapkit.audit import audit
from snapkit.audit.html import render_html, treemap_data, write_html

from .test_audit_model import manifest

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.usefixtures("chromium_tool")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'ud'}",
            "--window-size=1200,900",
            "--enable-logging=stderr",
            "--v=0",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def png_colours(data: bytes) -> int:
    """Count distinct pixel colours of an 8-bit RGB/RGBA PNG (no Pillow)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6), (depth, colour)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    colours: set[bytes] = set()
    for y in range(height):
        start = y * (stride + 1)
        ftype, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        if y % 4 == 0:
            colours.update(bytes(line[i : i + 3]) for i in range(0, stride, bpp * 4))
        prev = line
    return len(colours)


def test_page_is_self_contained_and_totals_match_json() -> None:
    """No external reference; the totals table carries the JSON's numbers."""
    report = audit(manifest(), budget="100MB", use_config=False)
    page = render_html(report)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "<link" not in page
    doc = report.to_json()
    shown = dict(re.findall(r'data-key="(\w+)" data-value="([^"]*)"', page))
    assert shown == {k: str(v) for k, v in doc["totals"].items()}
    leaves = [c for g in treemap_data(report)["children"] for c in g["children"]]
    assert sum(c["size"] for c in leaves) == report.totals.raw
    assert "budget exceeded" in page
    assert "hidden-reference" in page


@needs_chromium
def test_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    """The script draws tiles, the screenshot is not blank, no console error."""
    report = audit(manifest(), budget="100MB", use_config=False)
    ARTIFACTS.mkdir(exist_ok=True)
    page = ARTIFACTS / "audit-report.html"
    write_html(report, page)

    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    marker = re.search(
        r'<div id="rendered" data-tiles="(\d+)" data-bytes="(\d+)"', dom.stdout
    )
    assert marker, dom.stderr[-2000:]
    assert int(marker.group(1)) >= 5
    assert int(marker.group(2)) == report.totals.raw
    errors = [
        line
        for line in dom.stderr.splitlines()
        if "Uncaught" in line or ("CONSOLE" in line and "error" in line.lower())
    ]
    assert not errors

    shot = ARTIFACTS / "audit-report.png"
    shot.unlink(missing_ok=True)
    chromium(tmp_path, f"--screenshot={shot}", page.as_uri())
    assert shot.exists()
    assert png_colours(shot.read_bytes()) > 20
