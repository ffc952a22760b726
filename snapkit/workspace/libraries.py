"""Libraries: the interpreter, the installed distributions, and the required ones.

A pickle refers to classes and functions of installed libraries by name, so it
loads only where those libraries are installed, ideally at the same versions.
At capture :func:`collect` records every installed distribution and marks as
*required* those that provide

* a module the captured pickles reference (read from their streams by
  :func:`snapkit.workspace.objects.scan_imports`), and
* a module the session imported (``sys.modules``), except private ones
  (``_distutils_hack`` and the like, loaded by ``.pth`` files at startup) and
  those of the distributions
  snapkit itself depends on (its install requirements and its ``server`` and
  ``client`` extras, followed transitively). Those are present wherever
  snapkit runs and only show that snapkit was imported, not that the user's
  work needs them; they still count when a pickle references them, which is
  how ``cloudpickle`` becomes required once a function travels by value.

Reading the metadata of every installed distribution takes a noticeable
fraction of a second, and it rarely changes between two captures, so
:func:`collect` keeps what it read (in this process and in a file under the
cache folder) keyed on a fingerprint of the import path: every ``sys.path``
entry with the names and mtimes of the ``*.dist-info`` / ``*.egg-info``
folders in it. Installing, upgrading or removing a distribution changes the
fingerprint and the metadata is read again.

At load :func:`check_environment` compares that record with the running
interpreter: a missing required distribution is an error, a different version
or a different Python minor version is a warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata as metadata
import json
import logging
import os
import platform
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import cloudpickle

import snapkit
from snapkit.errors import EnvironmentMismatchError, FormatError
from snapkit.store import serial
from snapkit.workspace.cachedir import cache_dir
from snapkit.workspace.manifest import Distribution, Libraries

__all__ = [
    "EnvReport",
    "EnvRow",
    "check_environment",
    "collect",
    "installed",
    "normalize",
    "requirements_txt",
]

log = logging.getLogger(__name__)

#: snapkit's own extras whose libraries snapkit may import by itself.
_OWN_EXTRAS = frozenset({"server", "client"})

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def normalize(name: str) -> str:
    """Return the PEP 503 normalised form of a distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


# -- what is installed ---------------------------------------------------------


def installed() -> dict[str, Distribution]:
    """Return the distributions the running interpreter sees, by normalised name.

    When a name is installed twice on ``sys.path``, the first one wins, as it
    does for imports.
    """
    found: dict[str, Distribution] = {}
    for dist in metadata.distributions():
        raw_name = dist.metadata["Name"] if dist.metadata else None
        if not raw_name:
            continue
        name = normalize(raw_name)
        if name not in found:
            found[name] = Distribution(name, dist.version or "", _direct_url(dist))
    return dict(sorted(found.items()))


def _direct_url(dist: metadata.Distribution) -> str | None:
    """Return the PEP 610 URL of an editable, local or VCS install, else None."""
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    try:
        info = json.loads(text)
        url = info["url"]
    except (ValueError, KeyError, TypeError):
        log.debug("unreadable direct_url.json in %s", dist.metadata["Name"])
        return None
    if not isinstance(url, str):
        return None
    vcs = info.get("vcs_info")
    if isinstance(vcs, dict) and isinstance(vcs.get("vcs"), str):
        url = f"{vcs['vcs']}+{url}"
        if isinstance(vcs.get("commit_id"), str):
            url += f"@{vcs['commit_id']}"
    return url


def _module_owners() -> dict[str, list[str]]:
    """Map each top-level module to the normalised names that provide it.

    ``packages_distributions()`` reads ``top_level.txt`` only on Python 3.10,
    and wheels built by newer back ends (numpy's meson-python) ship none, so
    the top-level names are also read off each distribution's RECORD.
    """
    owners: dict[str, set[str]] = {
        module: {normalize(d) for d in dists}
        for module, dists in metadata.packages_distributions().items()
    }
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        for top in _record_tops(dist):
            owners.setdefault(top, set()).add(normalize(name))
    return {module: sorted(names) for module, names in owners.items()}


def _record_tops(dist: metadata.Distribution) -> set[str]:
    """Top-level importable names among the files a distribution installed."""
    tops: set[str] = set()
    for path in dist.files or ():
        parts = path.parts
        if not parts or parts[0].endswith((".dist-info", ".egg-info", ".data")):
            continue
        if parts[0] in ("..", "__pycache__") or parts[0].startswith("."):
            continue
        if len(parts) > 1:
            tops.add(parts[0])
        elif parts[0].endswith((".py", ".so", ".pyd")):
            tops.add(parts[0].split(".", 1)[0])
    return {t for t in tops if t.isidentifier()}


def _requires(name: str, extras: frozenset[str] = frozenset()) -> list[str]:
    """Names a distribution depends on (its base requirements plus ``extras``)."""
    try:
        lines = metadata.requires(name) or []
    except metadata.PackageNotFoundError:
        return []
    names = []
    for line in lines:
        requirement, _, marker = line.partition(";")
        extra = _EXTRA_MARKER.search(marker)
        if extra and extra.group(1) not in extras:
            continue
        match = _NAME.match(requirement)
        if match:
            names.append(normalize(match.group(1)))
    return names


def _snapkit_closure() -> set[str]:
    """snapkit and every distribution it pulls in, transitively."""
    seen = {"snapkit"}
    todo = _requires("snapkit", _OWN_EXTRAS)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_requires(name))
    return seen


# -- capture -----------------------------------------------------------------


def collect(
    object_modules: Iterable[str], session_modules: Iterable[str] | None = None
) -> Libraries:
    """Record the interpreter, the installed and the required distributions.

    ``object_modules`` are the modules the captured pickles reference, as
    module names or ``module:qualname`` entries. ``session_modules`` defaults
    to the top-level modules in ``sys.modules`` that belong to a distribution
    other than snapkit and its own dependencies (see the module docstring).
    """
    dists, owners, own = _metadata()

    if session_modules is None:
        session = {
            module
            for module in _tops(sys.modules)
            if module in owners
            and not module.startswith("_")
            and not set(owners[module]) <= own
        }
    else:
        session = _tops(session_modules)

    required: set[str] = set()
    for module in _tops(object_modules) | session:
        required.update(owners.get(module, ()))

    libraries = Libraries(
        python_version=platform.python_version(),
        implementation=platform.python_implementation(),
        platform=platform.platform(),
        machine=platform.machine(),
        cloudpickle_version=str(cloudpickle.__version__),
        snapkit_version=snapkit.__version__,
        distributions=list(dists.values()),
        required=sorted(required & dists.keys()),
        session_modules=sorted(session),
    )
    log.info(
        "libraries: %d distributions installed, %d required",
        len(libraries.distributions),
        len(libraries.required),
    )
    return libraries


# -- the metadata cache --------------------------------------------------------

_CACHE_FORMAT = 1
_Metadata = tuple[dict[str, Distribution], dict[str, list[str]], set[str]]
#: (fingerprint, metadata) of the last read in this process.
_memo: tuple[str, _Metadata] | None = None


def _metadata() -> _Metadata:
    """Installed distributions, module owners and snapkit's own closure."""
    global _memo
    fingerprint = _path_fingerprint()
    if _memo is not None and _memo[0] == fingerprint:
        return _memo[1]
    path = _cache_file()
    found = _read_cache(path, fingerprint)
    if found is None:
        found = (installed(), _module_owners(), _snapkit_closure())
        _write_cache(path, fingerprint, found)
    _memo = (fingerprint, found)
    return found


def _path_fingerprint() -> str:
    """A digest that changes when a distribution on ``sys.path`` changes."""
    digest = hashlib.sha256(sys.version.encode())
    for entry in sys.path:
        where = os.path.abspath(entry or os.curdir)
        digest.update(b"\0path\0" + os.fsencode(where))
        try:
            with os.scandir(where) as it:
                names = sorted(
                    (e.name, e.stat(follow_symlinks=False).st_mtime_ns)
                    for e in it
                    if e.name.endswith((".dist-info", ".egg-info", ".egg-link"))
                )
        except OSError:  # missing, a file (zip), or unreadable
            try:
                st = os.stat(where)
                digest.update(b"%d:%d" % (st.st_mtime_ns, st.st_size))
            except OSError:
                digest.update(b"absent")
            continue
        for name, mtime in names:
            digest.update(b"\0%s:%d" % (os.fsencode(name), mtime))
    return digest.hexdigest()


def _cache_file() -> str:
    who = hashlib.sha256(os.fsencode(sys.executable) + sys.prefix.encode())
    return os.path.join(cache_dir(), "libraries", f"{who.hexdigest()[:32]}.msgpack")


def _read_cache(path: str, fingerprint: str) -> _Metadata | None:
    try:
        with open(path, "rb") as f:
            data = f.read(serial.MAX_DOCUMENT // 16 + 1)
        doc = serial.unpack(data, path, max_size=serial.MAX_DOCUMENT // 16)
        if doc.get("format") != _CACHE_FORMAT or doc.get("fingerprint") != fingerprint:
            return None
        dists = {}
        for name, version, url in doc["installed"]:
            if not (isinstance(name, str) and isinstance(version, str)):
                raise TypeError("distribution name and version must be str")
            if url is not None and not isinstance(url, str):
                raise TypeError("distribution url must be str or nil")
            dists[name] = Distribution(name, version, url)
        owners = {str(k): [str(n) for n in v] for k, v in doc["owners"].items()}
        return dists, owners, {str(n) for n in doc["closure"]}
    except FileNotFoundError:
        return None
    except (OSError, FormatError, AttributeError, KeyError, TypeError, ValueError):
        log.debug("library cache %s unreadable; reading the metadata", path)
        return None


def _write_cache(path: str, fingerprint: str, found: _Metadata) -> None:
    dists, owners, closure = found
    doc = {
        "format": _CACHE_FORMAT,
        "fingerprint": fingerprint,
        "installed": [[d.name, d.version, d.url] for d in dists.values()],
        "owners": owners,
        "closure": sorted(closure),
    }
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(serial.pack(doc))
        os.replace(tmp, path)  # a cache: no fsync, a torn file reads as stale
    except OSError as exc:
        log.debug("library cache %s not written: %s", path, exc)
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _tops(modules: Iterable[str]) -> set[str]:
    tops = {m.partition(":")[0].partition(".")[0] for m in modules}
    return tops - {"", "__main__"}


# -- load --------------------------------------------------------------------


@dataclass(frozen=True)
class EnvRow:
    """One difference between the recorded and the running environment.

    ``kind`` is ``python`` (another minor version or implementation),
    ``missing`` (a required distribution is not installed), ``version`` (a
    required distribution has another version) or ``other`` (a distribution
    the objects do not need differs: for information only).
    """

    kind: str
    name: str
    recorded: str
    running: str

    @property
    def severity(self) -> str:
        return {"missing": "error", "other": "info"}.get(self.kind, "warning")


@dataclass
class EnvReport:
    """The result of :func:`check_environment`."""

    rows: list[EnvRow] = field(default_factory=list)
    #: Distribution name -> requirement to install (``name==version``, URL).
    fixes: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every required distribution is installed."""
        return not any(r.severity == "error" for r in self.rows)

    @property
    def warnings(self) -> list[EnvRow]:
        return [r for r in self.rows if r.severity == "warning"]

    def render(self, *, include_info: bool = False) -> str:
        """Return an aligned text table of the differences."""
        order = {"error": 0, "warning": 1, "info": 2}
        shown = sorted(
            (r for r in self.rows if include_info or r.severity != "info"),
            key=lambda r: order[r.severity],
        )
        hidden = len(self.rows) - len(shown)
        if not shown:
            text = "environment matches the snapshot"
            if hidden:
                text += f" ({hidden} unneeded distributions differ)"
            return text

        table = [("", "kind", "name", "recorded", "running")]
        marks = {"error": "!!", "warning": "~~", "info": "  "}
        table += [
            (marks[r.severity], r.kind, r.name, r.recorded or "-", r.running or "-")
            for r in shown
        ]
        widths = [max(len(row[i]) for row in table) for i in range(5)]
        lines = [
            "  ".join(
                cell.ljust(w) for cell, w in zip(row, widths, strict=True)
            ).rstrip()
            for row in table
        ]
        if hidden:
            lines.append(f"(and {hidden} unneeded distributions that differ)")
        return "\n".join(lines)

    def pip_line(self) -> str:
        """Return the pip command installing what is missing or mismatched."""
        if not self.fixes:
            return ""
        quoted = (_quote(req) for _, req in sorted(self.fixes.items()))
        return "pip install " + " ".join(quoted)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def check_environment(recorded: Libraries, *, strict: bool = True) -> EnvReport:
    """Compare the libraries recorded at capture with the running interpreter.

    Missing required distributions raise
    :class:`~snapkit.errors.EnvironmentMismatchError` (with the table and the
    pip line) when ``strict``; otherwise, and for version differences, the
    report is returned and each problem is logged as a WARNING.
    """
    running = installed()
    recorded_dists = {d.name: d for d in recorded.distributions}
    report = EnvReport()

    running_python = platform.python_version()
    if recorded.python_version and _minor(recorded.python_version) != _minor(
        running_python
    ):
        report.rows.append(
            EnvRow("python", "python", recorded.python_version, running_python)
        )
    running_impl = platform.python_implementation()
    if recorded.implementation and recorded.implementation != running_impl:
        report.rows.append(
            EnvRow("python", "implementation", recorded.implementation, running_impl)
        )

    required = {normalize(n) for n in recorded.required}
    for name in sorted(required):
        want = recorded_dists.get(name)
        have = running.get(name)
        want_version = want.version if want else ""
        if have is None:
            report.rows.append(EnvRow("missing", name, want_version, ""))
        elif want_version and have.version != want_version:
            report.rows.append(EnvRow("version", name, want_version, have.version))
        else:
            continue
        report.fixes[name] = _requirement(want) if want else name

    for name, want in sorted(recorded_dists.items()):
        if name in required:
            continue
        have = running.get(name)
        if have is None or have.version != want.version:
            report.rows.append(
                EnvRow("other", name, want.version, have.version if have else "")
            )

    _log(report)
    if strict and not report.ok:
        raise EnvironmentMismatchError(
            "the running interpreter lacks libraries the snapshot's objects need:"
            f"\n{report.render()}\nInstall them with:\n  {report.pip_line()}\n"
            "or pass strict=False (CLI: --no-strict) to load anyway"
        )
    return report


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _log(report: EnvReport) -> None:
    for row in report.rows:
        if row.severity == "info":
            continue
        log.warning(
            "environment: %s %s recorded %s, running %s",
            row.kind,
            row.name,
            row.recorded or "-",
            row.running or "not installed",
        )


# -- requirements ------------------------------------------------------------


def _requirement(dist: Distribution) -> str:
    """One requirement line: a pin, or a PEP 508 direct reference.

    ``file:`` URLs point into the capturing machine, so they become a pin with
    the path as a comment rather than a reference pip cannot follow elsewhere.
    """
    if dist.url and not dist.url.startswith("file:"):
        return f"{dist.name} @ {dist.url}"
    if dist.version:
        return f"{dist.name}=={dist.version}"
    return dist.name


def requirements_txt(libraries: Libraries) -> str:
    """Return a pinned requirements file of the required distributions.

    The header states the Python it was recorded with; callers add lines about
    the snapshot above it.
    """
    by_name: Mapping[str, Distribution] = {d.name: d for d in libraries.distributions}
    lines = [
        f"# Python {libraries.python_version} ({libraries.implementation}) "
        f"on {libraries.platform}",
    ]
    for name in sorted({normalize(n) for n in libraries.required}):
        dist = by_name.get(name)
        if dist is None:
            lines.append(f"{name}  # version not recorded")
            continue
        line = _requirement(dist)
        if dist.url and dist.url.startswith("file:"):
            line += f"  # installed from {dist.url}"
        lines.append(line)
    return "\n".join(lines) + "\n"
