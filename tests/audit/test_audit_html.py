"""The --html report renders in headless Chromium and agrees with the JSON."""

from __future__ import annotations

import json
import os
import re
import struct
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from snapkit.audit import audit
from snapkit.audit.html import render_html, treemap_data
from snapkit.cli import main

from .chromium import render
from .test_audit_model import manifest

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
needs_chromium = pytest.mark.usefixtures("chromium_tool")


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


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real capture: an array, a frame-like table, files in folders, a tiny one."""
    import numpy as np

    import snapkit

    root = tmp_path_factory.mktemp("ws")
    (root / "data" / "raw").mkdir(parents=True)
    (root / "data" / "raw" / "noise.bin").write_bytes(os.urandom(3_000_000))
    (root / "data" / "table.csv").write_text("x,y\n" + "1,2\n" * 50_000)
    (root / "README.md").write_text("tiny\n")
    objects = {
        "features": np.arange(1_500_000, dtype=np.float64),
        "labels": ["a", "b"] * 1000,
    }
    out = root.parent / "ws.snap"
    snapkit.capture(objects=objects, files=root, to=out).close()
    return out


def cli(*args: str | Path, code: int = 0) -> Result:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


def test_cli_html_totals_match_what_cli_json_prints(
    archive: Path, tmp_path: Path
) -> None:
    """Two separate runs, --json and --html: the page shows the printed numbers."""
    doc = json.loads(cli("audit", archive, "--json").stdout)
    page = tmp_path / "report.html"
    cli("audit", archive, "--html", page)

    text = page.read_text()
    shown = dict(re.findall(r'data-key="(\w+)" data-value="([^"]*)"', text))
    assert shown == {k: str(v) for k, v in doc["totals"].items()}
    embedded = re.search(
        r'<script type="application/json" id="report">(.*?)</script>', text, re.S
    )
    assert embedded
    assert json.loads(embedded.group(1).replace("<\\/", "</")) == doc


@needs_chromium
def test_html_renders_in_headless_chromium(
    archive: Path, tmp_path: Path, chromium_tool: str
) -> None:
    """Tiles drawn for every byte, a screenshot that is not blank, no console
    error, and no request but the page itself."""
    doc = json.loads(cli("audit", archive, "--json").stdout)
    ARTIFACTS.mkdir(exist_ok=True)
    page = ARTIFACTS / "audit-report.html"
    # Over budget, so the page shows the violation too.
    cli("audit", archive, "--budget", "1MB", "--html", page, code=1)

    seen = render(chromium_tool, page, tmp_path / "profile")

    assert seen.errors == []
    assert seen.requests == [page.as_uri()]
    assert seen.marker is not None, "the treemap script did not finish"
    assert int(seen.marker["data-tiles"]) >= 5
    assert int(seen.marker["data-bytes"]) == doc["totals"]["raw"]
    assert int(seen.marker["data-drawn-bytes"]) == doc["totals"]["raw"]
    shot = ARTIFACTS / "audit-report.png"
    shot.write_bytes(seen.screenshot)
    assert png_colours(seen.screenshot) > 20


@needs_chromium
def test_console_check_catches_a_bad_page(tmp_path: Path, chromium_tool: str) -> None:
    """The check above is not blind: console.error and a throw are both caught,
    console.log is not an error."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!doctype html><title>bad</title><script>"
        'console.log("fine"); console.error("boom");'
        'throw new Error("kaput");</script>'
    )
    seen = render(chromium_tool, bad, tmp_path / "profile")
    assert ("log", "fine") in seen.console
    assert seen.errors[0] == "console.error: boom"
    assert len(seen.errors) == 2 and "kaput" in seen.errors[1]
    assert seen.marker is None

    quiet = tmp_path / "quiet.html"
    quiet.write_text(
        '<!doctype html><title>ok</title><script>console.log("hi")</script>'
    )
    assert render(chromium_tool, quiet, tmp_path / "profile2").errors == []
