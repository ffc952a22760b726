"""Audit a snapshot before publishing: what it holds, what it costs, what to drop.

:func:`audit` works on a manifest, so auditing an archive or a server snapshot
reads no blob; a workspace that is not captured yet is measured with a dry-run
capture (chunked and compressed, nothing written). The report lists the
largest items and why each is in, findings with suggested fixes, and the
verdict of the budget gate (limits from arguments or from ``[tool.snapkit]``
in ``pyproject.toml``, see :func:`find_limits`).
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import sys
from collections import defaultdict
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snapkit.audit.entrypoint import parse_entrypoint, used_globals
from snapkit.audit.report import (
    AuditReport,
    Finding,
    Growth,
    Item,
    Limits,
    Totals,
    Violation,
)
from snapkit.diff import Source, blob_stored_sizes, diff_sources, opened_sources
from snapkit.errors import ConfigError, UsageError
from snapkit.workspace.ignore import RuleSet, is_secret
from snapkit.workspace.manifest import Manifest, content_id

__all__ = [
    "AuditReport",
    "Finding",
    "Item",
    "Limits",
    "Violation",
    "audit",
    "find_limits",
    "parse_size",
    "used_globals",
]

log = logging.getLogger(__name__)

#: Data at least this big that compresses to more than
#: :data:`INCOMPRESSIBLE_RATIO` of its size is reported.
INCOMPRESSIBLE_MIN = 1_000_000
INCOMPRESSIBLE_RATIO = 0.95
#: A function or closure pickling to more than this has captured a big value.
HIDDEN_REFERENCE_MIN = 1_000_000
#: Duplicates smaller than this are not worth a finding.
DUPLICATE_MIN = 4096

_FUNCTION_TYPES = frozenset(
    {"builtins.function", "builtins.method", "functools.partial", "function"}
)

# -- sizes and limits ----------------------------------------------------------

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Z]*)\s*$")


def parse_size(value: str | int, what: str = "size") -> int:
    """Return a size in bytes from ``200MB``, ``1.5GiB``, ``500k`` or an int.

    Decimal units (k, KB, M, MB, G, GB, T, TB; any case) are powers of 1000;
    binary units (KiB, MiB, GiB, TiB) are powers of 1024; no unit or ``B``
    means bytes. Raises :class:`~snapkit.errors.UsageError` naming the value.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise UsageError(f"{what} {value} is negative; give a size like 200MB")
        return value
    match = _SIZE.match(str(value))
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise UsageError(
            f"{what} {value!r} is not a size; write a number with an optional "
            "unit: 500k, 200MB, 1.5GiB (k/M/G/T are powers of 1000, "
            "KiB/MiB/GiB/TiB powers of 1024)"
        )
    number = float(match.group(1))
    if _UNITS[unit] == 1 and not number.is_integer():
        raise UsageError(
            f"{what} {value!r} is a fraction of a byte; give whole bytes or a "
            "unit: 2, 1.5k, 1.5MB"
        )
    return int(number * _UNITS[unit])


_LIMIT_KEYS = {"budget": "budget", "max-object": "max_object", "max-file": "max_file"}


def _config_size(value: Any, key: str, path: Path) -> int:
    where = f"{key} in [tool.snapkit] of {path}"
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        hint = (
            f'write "{value}MB" (quoted, with a unit) or a whole number of bytes'
            if isinstance(value, float)
            else 'write a size like "200MB" or a whole number of bytes'
        )
        raise ConfigError(f"{where} is {value!r}, not a size; {hint}")
    try:
        return parse_size(value, where)
    except UsageError as exc:
        raise ConfigError(str(exc)) from exc


def _check_keys(section: dict[str, Any], path: Path) -> None:
    unknown = sorted(k for k in section if k not in _LIMIT_KEYS)
    if not unknown:
        return
    hints = [
        f"{k!r} (did you mean {k.replace('_', '-')!r}?)"
        if k.replace("_", "-") in _LIMIT_KEYS
        else repr(k)
        for k in unknown
    ]
    raise ConfigError(
        f"[tool.snapkit] in {path} has unknown key(s) {', '.join(hints)}; "
        f"the valid keys are {', '.join(_LIMIT_KEYS)}"
    )


def _read_tool_section(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # the same parser, published for older Pythons
        import tomli as tomllib

    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"cannot read {path}: {exc}; fix the TOML or pass limits as flags"
        ) from exc
    section = doc.get("tool", {}).get("snapkit", {})
    return section if isinstance(section, dict) else {}


def find_limits(start: str | os.PathLike[str] | None = None) -> Limits:
    """Return the limits in ``[tool.snapkit]`` of the nearest ``pyproject.toml``.

    Walks up from ``start`` (default: the current directory) and stops at the
    first ``pyproject.toml`` that has a ``[tool.snapkit]`` section. Keys:
    ``budget``, ``max-object``, ``max-file``: a size string as for
    :func:`parse_size` or a whole number of bytes. Raises
    :class:`~snapkit.errors.ConfigError` naming the file and the bad value
    or unknown key (a misspelt limit would otherwise be silently ignored).
    """
    here = Path(start if start is not None else os.getcwd()).resolve()
    if here.is_file():
        here = here.parent
    for directory in (here, *here.parents):
        candidate = directory / "pyproject.toml"
        if not candidate.is_file():
            continue
        section = _read_tool_section(candidate)
        if not section:
            continue
        _check_keys(section, candidate)
        values: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for key, attr in _LIMIT_KEYS.items():
            if key in section:
                values[attr] = _config_size(section[key], key, candidate)
                origin[attr] = str(candidate)
        return Limits(**values, origin=origin)
    return Limits()


def _merge_limits(
    budget: str | int | None,
    max_object: str | int | None,
    max_file: str | int | None,
    config: Limits,
) -> Limits:
    values: dict[str, int | None] = {
        "budget": config.budget,
        "max_object": config.max_object,
        "max_file": config.max_file,
    }
    origin = dict(config.origin)
    for attr, flag, given in (
        ("budget", "--budget", budget),
        ("max_object", "--max-object", max_object),
        ("max_file", "--max-file", max_file),
    ):
        if given is not None:
            values[attr] = parse_size(given, flag)
            origin[attr] = "flag"
    return Limits(**values, origin=origin)


# -- the audit -----------------------------------------------------------------


def audit(
    source: Any,
    budget: str | int | None = None,
    max_object: str | int | None = None,
    max_file: str | int | None = None,
    baseline: Any = None,
    entrypoint: str | None = None,
    top: int = 10,
    *,
    use_config: bool = True,
    **capture_options: Any,
) -> AuditReport:
    """Measure ``source`` and judge it against the limits; return the report.

    ``source`` is anything :func:`snapkit.diff.load_source` accepts: an
    archive path, a server snapshot id, a snapshot, a ``(repository, id)``
    pair, a manifest, a workspace directory or a namespace dict (both
    measured by a dry-run capture, which gets ``capture_options``:
    ``include``, ``files``, ``file_include``, ``file_exclude``,
    ``allow_secrets``...).
    Limits given here override those in ``pyproject.toml`` (searched from
    the audited directory, else the current one; ``use_config=False`` skips
    it). The report is returned even when a limit is exceeded: call
    :meth:`AuditReport.check` to raise
    :class:`~snapkit.errors.BudgetExceededError`. Archives and server
    connections opened here are closed before returning.
    """
    if top < 1:
        raise UsageError(f"--top {top} must be at least 1")
    with ExitStack() as stack:
        (src,) = stack.enter_context(opened_sources(source, **capture_options))
        base = None
        if baseline is not None:
            (base,) = stack.enter_context(opened_sources(baseline))

        config = Limits()
        if use_config:
            config = find_limits(src.root if src.root is not None else None)
        limits = _merge_limits(budget, max_object, max_file, config)

        used: set[str] | None = None
        function = None
        if entrypoint is not None:
            script, function = parse_entrypoint(entrypoint)
            used = used_globals(script, function)

        why = _Why(
            live=src.live,
            include=set(capture_options.get("include") or ()),
            function=function,
            used=used,
            # A snapshot's manifest does not record the rules behind its files.
            kept=dict(src.kept) if src.live else None,
        )
        # Built while the sources are open: exact stored sizes ask the
        # repository.
        report = _build(src, limits, base, entrypoint, used, why, top)
    log.info(
        "audited %s: raw %d, stored %d, %d findings, %d limits exceeded",
        report.source,
        report.totals.raw,
        report.totals.stored,
        len(report.findings),
        len(report.violations),
    )
    return report


@dataclass(frozen=True)
class _Why:
    """What an item's ``why`` is worked out from."""

    live: bool
    include: set[str]
    function: str | None
    used: set[str] | None
    #: Path -> deciding rule for files a rule kept; None: rules not recorded.
    kept: dict[str, str] | None

    def object(self, name: str) -> str:
        if self.used is not None:
            if name == self.function:
                return "the entry point"
            return f"{'used' if name in self.used else 'not used'} by {self.function}"
        if name in self.include:
            return "selected by include list"
        if self.live:
            return "namespace variable"
        return "captured object"

    def file(self, path: str) -> str:
        if self.kept is None:
            return "captured file (ignore rules not recorded in the snapshot)"
        rule = self.kept.get(path)
        return f"kept by {rule}" if rule else "not matched by any ignore rule"


def _build(
    src: Source,
    limits: Limits,
    base: Source | None,
    entrypoint: str | None,
    used: set[str] | None,
    why: _Why,
    top: int,
) -> AuditReport:
    m = src.manifest
    blob_stored, exact = _stored_per_blob(src)
    totals = _totals(m, blob_stored, exact)
    raw_total = max(totals.raw, 1)

    objects = sorted(
        (
            Item(
                "object",
                o.name,
                o.raw_size,
                o.stored_size or sum(blob_stored[b] for b, _ in o.blob_refs()),
                o.raw_size / raw_total,
                why.object(o.name),
                o.type,
            )
            for o in m.objects
        ),
        key=_by_size,
    )
    files = sorted(
        (
            Item(
                "file",
                f.path,
                f.size,
                f.stored_size or sum(blob_stored[b] for b, _ in f.blobs),
                f.size / raw_total,
                why.file(f.path),
            )
            for f in m.files
            if f.kind == "file"
        ),
        key=_by_size,
    )
    folders = _folders(files, raw_total)

    violations = _violations(limits, totals, objects, files, top)
    findings = _findings(src, objects, files, used, why.function)
    growth = _growth(base, src) if base is not None else ()
    return AuditReport(
        source=src.label,
        snapshot_id=src.snapshot_id,
        live=src.live,
        totals=totals,
        objects=tuple(objects),
        files=tuple(files),
        folders=tuple(folders),
        libraries=tuple(f"{d.name}=={d.version}" for d in m.libraries.distributions),
        findings=tuple(findings),
        limits=limits,
        violations=tuple(violations),
        growth=tuple(growth),
        baseline=base.label if base is not None else None,
        entrypoint=entrypoint,
        used_globals=tuple(sorted(used)) if used is not None else (),
        top=top,
    )


def _by_size(item: Item) -> tuple[int, int, str]:
    return (-item.raw_size, -item.stored_size, item.name)


def _stored_per_blob(src: Source) -> tuple[dict[str, int], bool]:
    estimate = blob_stored_sizes(src.manifest)
    if src.repository is None or src.live:
        return estimate, False
    try:
        exact = src.repository.stored_sizes(estimate.keys())
    except Exception as exc:  # sizes are a nicety; the estimate stands in
        log.warning("cannot read stored sizes from %s: %s", src.label, exc)
        return estimate, False
    estimate.update(exact)
    return estimate, len(exact) == len(estimate)


def _totals(m: Manifest, blob_stored: dict[str, int], exact: bool) -> Totals:
    object_blobs: dict[str, int] = {}
    for o in m.objects:
        object_blobs.update(o.blob_refs())
    file_blobs: dict[str, int] = {}
    for f in m.files:
        file_blobs.update(f.blobs)
    unique = {**object_blobs, **file_blobs}
    objects_raw = sum(o.raw_size for o in m.objects)
    files_raw = sum(f.size for f in m.files)
    return Totals(
        raw=objects_raw + files_raw,
        stored=sum(blob_stored[b] for b in unique),
        objects_raw=objects_raw,
        objects_stored=sum(blob_stored[b] for b in object_blobs),
        files_raw=files_raw,
        files_stored=sum(blob_stored[b] for b in file_blobs),
        objects=len(m.objects),
        files=sum(1 for f in m.files if f.kind == "file"),
        libraries=len(m.libraries.distributions),
        blobs=len(unique),
        dedup_saved=objects_raw + files_raw - sum(unique.values()),
        stored_exact=exact,
    )


def _folders(files: Iterable[Item], raw_total: int) -> list[Item]:
    raw: dict[str, int] = defaultdict(int)
    stored: dict[str, int] = defaultdict(int)
    for f in files:
        folder = posixpath.dirname(f.name)
        while folder:
            raw[folder] += f.raw_size
            stored[folder] += f.stored_size
            folder = posixpath.dirname(folder)
    items = [
        Item("folder", name + "/", size, stored[name], size / raw_total, "holds files")
        for name, size in raw.items()
    ]
    return sorted(items, key=_by_size)


def _violations(
    limits: Limits, totals: Totals, objects: list[Item], files: list[Item], top: int
) -> list[Violation]:
    out: list[Violation] = []
    blame_n = min(top, 5)
    if limits.budget is not None and totals.stored > limits.budget:
        biggest = sorted(objects + files, key=lambda i: (-i.stored_size, i.name))
        out.append(
            Violation("budget", limits.budget, totals.stored, tuple(biggest[:blame_n]))
        )
    for rule, limit, items in (
        ("max-object", limits.max_object, objects),
        ("max-file", limits.max_file, files),
    ):
        if limit is None:
            continue
        over = [i for i in items if i.raw_size > limit]
        if over:
            out.append(Violation(rule, limit, over[0].raw_size, tuple(over[:blame_n])))
    return out


# -- findings ------------------------------------------------------------------


def _findings(
    src: Source,
    objects: list[Item],
    files: list[Item],
    used: set[str] | None,
    function: str | None,
) -> list[Finding]:
    out: list[Finding] = []
    out += _secret_findings(src)
    out += _default_ignored(src.manifest)
    out += _duplicates(src.manifest)
    out += _incompressible(objects + files)
    out += _hidden_references(objects)
    if used is not None and function is not None:
        out += _purge_candidates(objects, used, function)
    return out


def _secret_findings(src: Source) -> list[Finding]:
    out = []
    for f in src.manifest.files:
        if f.kind == "file" and is_secret(posixpath.basename(f.path)):
            out.append(
                Finding(
                    "secret",
                    (f"file:{f.path}",),
                    f.size,
                    f"{f.path} looks like a secret and is IN the snapshot",
                    f"remove it from the snapshot (--exclude {f.path}), rotate the "
                    "credentials it holds, and load them from the environment instead",
                )
            )
    for path in src.secrets:
        out.append(
            Finding(
                "secret-left-out",
                (f"file:{path}",),
                0,
                f"{path} looks like a secret and was left out of the capture",
                "nothing to do; keep credentials out of the workspace, or pass "
                "allow_secrets only if the snapshot must carry it",
            )
        )
    return out


def _default_ignored(m: Manifest) -> list[Finding]:
    rules = RuleSet()
    out = []
    for f in m.files:
        if f.kind != "file":
            continue
        verdict = rules.judge(f.path, False, ())
        folder = posixpath.dirname(f.path)
        while not verdict.excluded and folder:
            verdict = rules.judge(folder, True, ())
            folder = posixpath.dirname(folder)
        if verdict.excluded:
            out.append(
                Finding(
                    "default-ignored",
                    (f"file:{f.path}",),
                    f.size,
                    f"{f.path} would be dropped by the default ignore rule "
                    f"{verdict.reason!r}",
                    f"capture with the default ignore rules on, or --exclude {f.path}",
                )
            )
    return out


def _duplicates(m: Manifest) -> list[Finding]:
    groups: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for o in m.objects:
        if o.raw_size >= DUPLICATE_MIN:
            groups[o.content_id].append((f"object:{o.name}", o.raw_size))
        # A buffer equal to a file's bytes: the same data loaded and kept.
        for i, buf in enumerate(o.buffers):
            size = sum(s for _, s in buf)
            if size >= DUPLICATE_MIN:
                groups[content_id([buf])].append((f"object:{o.name}[{i}]", size))
    for f in m.files:
        if f.kind == "file" and f.size >= DUPLICATE_MIN:
            groups[f.content_id].append((f"file:{f.path}", f.size))

    out = []
    for members in groups.values():
        names = sorted({n for n, _ in members})
        if len(names) < 2:
            continue
        size = members[0][1]
        kinds = {n.split(":", 1)[0] for n in names}
        if kinds == {"file"}:
            fix = "keep one copy and delete or --exclude the others"
        elif kinds == {"object"}:
            fix = "keep one name for the value and drop the others from the capture"
        else:
            fix = (
                "drop the object and load it from the file at start-up, or "
                "--exclude the file"
            )
        out.append(
            Finding(
                "duplicate",
                tuple(names),
                size * (len(names) - 1),
                f"the same {size:,} bytes are captured {len(names)} times: "
                + ", ".join(names),
                fix + " (stored once thanks to dedup, but restored "
                f"{len(names)} times)",
            )
        )
    out.sort(key=lambda f: (-f.bytes, f.items))
    return out


def _incompressible(items: list[Item]) -> list[Finding]:
    out = []
    for i in items:
        if (
            i.raw_size >= INCOMPRESSIBLE_MIN
            and i.stored_size > 0
            and (i.stored_size / i.raw_size > INCOMPRESSIBLE_RATIO)
        ):
            out.append(
                Finding(
                    "incompressible",
                    (i.ref,),
                    i.raw_size,
                    f"{i.name} does not compress (stored "
                    f"{i.stored_size / i.raw_size:.0%} of its raw size)",
                    "it is random, encrypted or already compressed: drop it if the "
                    "service can fetch or regenerate it; compression will not help",
                )
            )
    return out


def _hidden_references(objects: list[Item]) -> list[Finding]:
    return [
        Finding(
            "hidden-reference",
            (o.ref,),
            o.raw_size,
            f"{o.name} is a {o.type} that pickles to {o.raw_size:,} bytes: a "
            "closure or default argument captures a large value",
            "make the large value a named object of its own (or reload it inside "
            "the function) so it is captured once and visibly",
        )
        for o in objects
        if o.type in _FUNCTION_TYPES and o.raw_size > HIDDEN_REFERENCE_MIN
    ]


def _purge_candidates(
    objects: list[Item], used: set[str], function: str
) -> list[Finding]:
    return [
        Finding(
            "purge-candidate",
            (o.ref,),
            o.raw_size,
            f"{o.name} ({o.raw_size:,} bytes) is not used by {function}",
            f"leave it out: capture with --for (or drop {o.name} from --keep)",
        )
        for o in objects
        if o.name not in used
    ]


def _growth(base: Source, src: Source) -> list[Growth]:
    d = diff_sources(base, src)
    out = [
        Growth("total", "raw", base.manifest.raw_size, src.manifest.raw_size),
    ]
    for o in d.objects:
        before, after = o.size_before or 0, o.size_after or 0
        if after > before:
            out.append(Growth("object", o.name, before, after))
    for f in d.files:
        before, after = f.size_before or 0, f.size_after or 0
        if after > before:
            out.append(Growth("file", f.path, before, after))
    out[1:] = sorted(out[1:], key=lambda g: (-g.delta, g.name))
    return out
