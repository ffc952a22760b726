"""The audit report: what a snapshot holds, what it costs, what to drop.

The model is plain frozen dataclasses so the text, JSON and HTML views all read
the same numbers. The JSON form (:meth:`AuditReport.to_json`) carries
``"schema": "snapkit.audit/1"`` and is documented in ``docs/audit-json.md``.

Sizes: *raw* is the uncompressed byte count (what a restore writes or loads);
*stored* is after compression, with each blob counted once (what a push
uploads to an empty repository and what the repository keeps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from snapkit.diff import format_size

__all__ = [
    "SCHEMA",
    "AuditReport",
    "Finding",
    "Growth",
    "Item",
    "Limits",
    "Totals",
    "Violation",
]

SCHEMA = "snapkit.audit/1"


@dataclass(frozen=True)
class Item:
    """One object, file, folder or library group, with why it is in."""

    kind: str  # "object", "file" or "folder"
    name: str
    raw_size: int
    stored_size: int
    #: Share (0–1) of the snapshot's raw total.
    share: float
    #: Which rule or root pulled it in.
    why: str
    type: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "type": self.type,
            "raw_size": self.raw_size,
            "stored_size": self.stored_size,
            "share": self.share,
            "why": self.why,
        }


@dataclass(frozen=True)
class Finding:
    """Something worth fixing before publishing, with the suggested fix."""

    #: One of "secret", "default-ignored", "duplicate", "incompressible",
    #: "hidden-reference", "purge-candidate", "secret-left-out".
    code: str
    #: ``kind:name`` of every item concerned.
    items: tuple[str, ...]
    #: Bytes at stake (raw): what dropping or fixing it would save.
    bytes: int
    message: str
    fix: str

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "items": list(self.items),
            "bytes": self.bytes,
            "message": self.message,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class Limits:
    """The budget gate's limits, in bytes; ``None`` means no limit.

    ``budget`` caps the stored total; ``max_object`` and ``max_file`` cap
    each item's raw size. ``origin`` says where each came from: ``"flag"``
    or the path of the ``pyproject.toml`` that set it.
    """

    budget: int | None = None
    max_object: int | None = None
    max_file: int | None = None
    origin: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "max_object": self.max_object,
            "max_file": self.max_file,
            "origin": dict(sorted(self.origin.items())),
        }


@dataclass(frozen=True)
class Violation:
    """One limit exceeded: the rule, its limit, the actual value, who to blame."""

    rule: str  # "budget", "max-object" or "max-file"
    limit: int
    actual: int
    blame: tuple[Item, ...]

    def describe(self) -> str:
        what = {
            "budget": "stored total",
            "max-object": "largest object (raw)",
            "max-file": "largest file (raw)",
        }[self.rule]
        stored = self.rule == "budget"
        blame = ", ".join(
            f"{i.name} ({format_size(i.stored_size if stored else i.raw_size)})"
            for i in self.blame
        )
        return (
            f"{self.rule} exceeded: {what} {format_size(self.actual)} > limit "
            f"{format_size(self.limit)}; largest: {blame}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "limit": self.limit,
            "actual": self.actual,
            "blame": [i.ref for i in self.blame],
        }


@dataclass(frozen=True)
class Growth:
    """An item that grew since the baseline, or the total (which may shrink)."""

    kind: str  # "object", "file" or "total"
    name: str
    size_before: int
    size_after: int

    @property
    def delta(self) -> int:
        return self.size_after - self.size_before

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "size_before": self.size_before,
            "size_after": self.size_after,
            "delta": self.delta,
        }


@dataclass(frozen=True)
class Totals:
    """Whole-snapshot figures. ``stored`` counts each blob once."""

    raw: int
    stored: int
    objects_raw: int
    objects_stored: int
    files_raw: int
    files_stored: int
    objects: int
    files: int
    libraries: int
    blobs: int
    #: Raw bytes saved because identical chunks are stored once.
    dedup_saved: int
    #: False when stored sizes were estimated from per-entry totals.
    stored_exact: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "raw": self.raw,
            "stored": self.stored,
            "objects_raw": self.objects_raw,
            "objects_stored": self.objects_stored,
            "files_raw": self.files_raw,
            "files_stored": self.files_stored,
            "objects": self.objects,
            "files": self.files,
            "libraries": self.libraries,
            "blobs": self.blobs,
            "dedup_saved": self.dedup_saved,
            "stored_exact": self.stored_exact,
        }


@dataclass(frozen=True)
class AuditReport:
    """The result of :func:`snapkit.audit.audit`.

    ``objects``, ``files`` and ``folders`` hold every item, largest first;
    the views show the first ``top``. ``violations`` is empty when every limit
    holds; :meth:`check` raises when it is not.
    """

    source: str
    snapshot_id: str | None
    live: bool
    totals: Totals
    objects: tuple[Item, ...]
    files: tuple[Item, ...]
    folders: tuple[Item, ...]
    libraries: tuple[str, ...]
    findings: tuple[Finding, ...]
    limits: Limits
    violations: tuple[Violation, ...]
    growth: tuple[Growth, ...] = ()
    baseline: str | None = None
    entrypoint: str | None = None
    #: Globals the entry point uses, when ``entrypoint`` is set.
    used_globals: tuple[str, ...] = ()
    top: int = 10

    @property
    def ok(self) -> bool:
        return not self.violations

    def check(self) -> None:
        """Raise :class:`~snapkit.errors.BudgetExceededError` if a limit is exceeded."""
        from snapkit.errors import BudgetExceededError

        if self.violations:
            lines = "; ".join(v.describe() for v in self.violations)
            raise BudgetExceededError(
                f"{self.source}: {lines}. Drop or shrink the items named, or raise "
                "the limit (flags or [tool.snapkit] in pyproject.toml)"
            )

    def to_json(self) -> dict[str, Any]:
        """Return the documented JSON document (``docs/audit-json.md``)."""
        n = self.top
        return {
            "schema": SCHEMA,
            "source": {"label": self.source, "id": self.snapshot_id, "live": self.live},
            "ok": self.ok,
            "totals": self.totals.to_json(),
            "top": n,
            "objects": [i.to_json() for i in self.objects[:n]],
            "files": [i.to_json() for i in self.files[:n]],
            "folders": [i.to_json() for i in self.folders[:n]],
            "libraries": list(self.libraries),
            "findings": [f.to_json() for f in self.findings],
            "limits": self.limits.to_json(),
            "violations": [v.to_json() for v in self.violations],
            "baseline": self.baseline,
            "growth": [g.to_json() for g in self.growth[:n]],
            "entrypoint": self.entrypoint,
            "used_globals": list(self.used_globals) if self.entrypoint else None,
        }

    def render(self) -> str:
        """Return the report as aligned plain text."""
        return "\n".join(_render(self)) + "\n"


def _signed(n: int) -> str:
    """``+1.2 MB``, ``-297 B`` or ``±0 B``: a change with its direction."""
    if n == 0:
        return "±0 B"
    return ("+" if n > 0 else "") + format_size(n)


def _pct(share: float) -> str:
    return f"{share * 100:.1f}%"


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    if not rows:
        return ["  (none)"]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append(("  " + "  ".join(cells)).rstrip())
    return out


def _item_rows(items: tuple[Item, ...], with_type: bool) -> list[list[str]]:
    rows = []
    for i in items:
        row = [
            i.name,
            format_size(i.raw_size),
            format_size(i.stored_size),
            _pct(i.share),
        ]
        if with_type:
            row.append(i.type or "")
        row.append(i.why)
        rows.append(row)
    return rows


def _render(r: AuditReport) -> list[str]:
    t = r.totals
    approx = "" if t.stored_exact else "~"
    lines = [
        f"audit of {r.source}" + (f" ({r.snapshot_id[:12]})" if r.snapshot_id else ""),
        f"  raw {format_size(t.raw)}, stored {approx}{format_size(t.stored)} "
        f"(dedup saves {format_size(t.dedup_saved)})",
        f"  {t.objects} objects ({format_size(t.objects_raw)} raw), {t.files} files "
        f"({format_size(t.files_raw)} raw), {t.libraries} libraries, {t.blobs} blobs",
        "",
        f"largest objects (top {r.top}):      raw      stored  share",
        *_table(_item_rows(r.objects[: r.top], True), {1, 2, 3}),
        f"largest files (top {r.top}):",
        *_table(_item_rows(r.files[: r.top], False), {1, 2, 3}),
        f"largest folders (top {r.top}):",
        *_table(
            [
                [
                    i.name,
                    format_size(i.raw_size),
                    format_size(i.stored_size),
                    _pct(i.share),
                ]
                for i in r.folders[: r.top]
            ],
            {1, 2, 3},
        ),
    ]
    if r.baseline is not None:
        # The first row is the total, which may have shrunk; the rest grew.
        lines.append(f"since {r.baseline}: the raw total, then what grew")
        lines += _table(
            [
                [
                    g.kind,
                    g.name,
                    format_size(g.size_before),
                    "→",
                    format_size(g.size_after),
                    _signed(g.delta),
                ]
                for g in r.growth[: r.top]
            ],
            {2, 4, 5},
        )
        if len(r.growth) == 1:
            lines.append("  (no object or file grew)")
    if r.entrypoint is not None:
        used = ", ".join(r.used_globals) or "none"
        lines.append(f"entry point {r.entrypoint} uses globals: {used}")
    lines.append("findings:")
    if not r.findings:
        lines.append("  (none)")
    for f in r.findings:
        lines.append(f"  [{f.code}] {f.message}")
        lines.append(f"      fix: {f.fix}")
    lines.append("")
    if r.violations:
        lines += ["BUDGET EXCEEDED:"] + ["  " + v.describe() for v in r.violations]
    elif any(
        x is not None for x in (r.limits.budget, r.limits.max_object, r.limits.max_file)
    ):
        lines.append("within budget")
    return lines
