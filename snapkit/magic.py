"""The notebook magic: ``%load_ext snapkit``, then ``%snapkit save|load|diff|audit``.

The magic works on the shell's user namespace. Without names, ``save`` keeps
the user variables that :func:`snapkit.workspace.objects.select` keeps, and
also drops every name IPython put there itself (``In``, ``Out``,
``get_ipython``, ...) unless the user has rebound it.

A mistake (a bad flag, a missing file, an object that will not pickle, a
budget exceeded) prints one ``snapkit: error: ...`` line to stderr and
returns: a notebook user should never face a traceback for their own typo.
Anything else is a bug and propagates with its traceback.

``load`` runs code from the snapshot. It checks the recorded environment,
reads and verifies every chosen object, and prints what each pickle imports,
all before unpickling anything; the namespace is updated only when every
object has loaded.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

from snapkit.errors import SnapkitError, UsageError

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from snapkit.diff import Source
    from snapkit.snapshot import Snapshot

__all__ = ["load_ipython_extension", "unload_ipython_extension"]

MAGIC_NAME = "snapkit"

_MISSING = object()


class _HelpShown(Exception):
    """argparse printed help (``-h``); nothing else to do."""


class _Parser(argparse.ArgumentParser):
    """An argparse parser that raises instead of exiting the kernel."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see %{self.prog.lstrip('%')} -h)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise _HelpShown


def _parser() -> _Parser:
    parser = _Parser(
        prog="%snapkit",
        description="Capture, load, diff and audit the notebook's variables.",
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    save = commands.add_parser(
        "save", help="capture the namespace into a snapshot", allow_abbrev=False
    )
    target = save.add_mutually_exclusive_group(required=True)
    target.add_argument("-o", "--output", metavar="FILE.snap", help="archive to write")
    target.add_argument(
        "--push", action="store_true", help="capture straight to the server"
    )
    save.add_argument("--name", help="snapshot name")
    save.add_argument("--tag", action="append", default=[], help="repeatable")
    where = save.add_mutually_exclusive_group()
    where.add_argument("--files", metavar="DIR", help="also capture files under DIR")
    where.add_argument(
        "--no-files", action="store_true", help="capture objects only (the default)"
    )
    save.add_argument(
        "--exclude", action="append", default=[], metavar="NAME", help="repeatable"
    )
    save.add_argument(
        "--skip-unpicklable",
        action="store_true",
        help="leave out objects that will not pickle instead of failing",
    )
    save.add_argument("names", nargs="*", metavar="NAME", help="variables to save")

    load = commands.add_parser(
        "load", help="load objects into the namespace", allow_abbrev=False
    )
    load.add_argument("source", metavar="SOURCE")
    load.add_argument("names", nargs="*", metavar="NAME", help="objects to load")
    load.add_argument(
        "--no-strict",
        action="store_true",
        help="load even when required libraries are missing",
    )

    diff = commands.add_parser(
        "diff", help="what changed since a snapshot", allow_abbrev=False
    )
    diff.add_argument("source", metavar="SOURCE")
    diff.add_argument("--files", metavar="DIR", help="also compare files with DIR")

    audit = commands.add_parser(
        "audit", help="sizes, findings and the budget gate", allow_abbrev=False
    )
    audit.add_argument("source", nargs="?", metavar="SOURCE")
    audit.add_argument("--budget", metavar="SIZE", help="limit on the stored total")
    audit.add_argument(
        "--files", metavar="DIR", help="with no SOURCE: also measure files in DIR"
    )
    return parser


# -- the magic -------------------------------------------------------------------


def run(shell: InteractiveShell, line: str) -> None:
    """Run one ``%snapkit`` line against ``shell``; print, never raise for misuse."""
    parser = _parser()
    try:
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"cannot split {line!r}: {exc}") from exc
        args, extra = parser.parse_known_args(argv)
        if args.command is None:
            parser.print_help()
            return
        if extra:
            raise UsageError(
                f"unrecognized arguments: {' '.join(extra)} "
                f"(see %snapkit {args.command} -h)"
            )
        _COMMANDS[args.command](shell, args)
    except _HelpShown:
        return
    except (SnapkitError, OSError) as exc:
        sys.stderr.write(f"snapkit: error: {exc}\n")


def _hidden_names(shell: InteractiveShell) -> list[str]:
    """Names IPython put in the namespace and the user has not rebound."""
    ns = shell.user_ns
    return [
        name
        for name, value in shell.user_ns_hidden.items()
        if ns.get(name, _MISSING) is value
    ]


def _save(shell: InteractiveShell, args: argparse.Namespace) -> None:
    from snapkit.capture import CaptureReport, capture
    from snapkit.cli._common import human_size

    to: Any = args.output
    if args.push:
        to = _client()
    exclude = list(args.exclude)
    if not args.names:
        exclude += _hidden_names(shell)

    report = CaptureReport()
    snap = capture(
        namespace=shell.user_ns,
        include=args.names or None,
        exclude=exclude,
        files=args.files,
        name=args.name,
        tags=args.tag,
        to=to,
        on_unpicklable="skip" if args.skip_unpicklable else "raise",
        report=report,
    )
    with snap:
        m = snap.manifest
        stored = sum(o.stored_size for o in m.objects)
        stored += sum(f.stored_size for f in m.files)
        print(
            f"captured {snap.id[:12]} {m.name!r} into {snap.repository.where}: "
            f"{len(m.objects)} objects, {len(m.files)} files"
        )
        for o in m.objects:
            print(f"  {o.name:<24} {o.type:<32} {human_size(o.raw_size):>10}")
        for s in m.skipped:
            print(f"  skipped {s.name}: {s.reason}", file=sys.stderr)
        for path in report.secrets:
            print(f"  left out {path} (looks like a secret)", file=sys.stderr)
        print(
            f"{human_size(m.raw_size)} raw, {human_size(stored)} stored, "
            f"{human_size(report.new_bytes)} new"
        )


def _client() -> Any:
    try:
        from snapkit.remote.client import Client
    except ImportError as exc:
        raise UsageError(
            "--push needs the client extra: pip install 'snapkit[client]'"
        ) from exc
    return Client()


def _load(shell: InteractiveShell, args: argparse.Namespace) -> None:
    from snapkit.workspace import objects as objs

    with _open(args.source) as snap:
        names = list(args.names) or snap.objects
        if not names:
            print(f"snapshot {snap.id[:12]} {snap.name!r} holds no objects")
            return
        env = snap.check_environment(strict=not args.no_strict)
        if env.rows:
            print(env.render())

        # Read and verify everything, and say what each pickle imports, before
        # the first unpickling runs any code from the snapshot.
        print(f"snapshot {snap.id[:12]} {snap.name!r}: what each pickle imports")
        pickles = {}
        for name in names:
            stream, buffers = snap.read_object(name)
            imports = objs.scan_imports(stream, name)
            print(f"  {name}: {', '.join(imports) or 'nothing'}")
            pickles[name] = (stream, buffers)

        loaded = {}
        for name in names:
            stream, buffers = pickles.pop(name)
            views = [memoryview(b) for b in buffers]
            loaded[name] = objs.load_object(name, stream, views)
    # push(), not update(): it also takes the names off IPython's hidden list.
    cast(Any, shell).push(loaded)  # IPython leaves push() unannotated
    print(f"loaded {len(loaded)} object(s): {', '.join(loaded)}")


def _open(spec: str) -> Snapshot:
    from snapkit.cli._common import open_source

    return open_source(spec)


def _snapshot_source(snap: Snapshot, label: str) -> Source:
    from snapkit.diff import load_source

    src = load_source(snap)
    src.label = label
    return src


def _live_source(
    shell: InteractiveShell, files: str | None, **capture_options: Any
) -> Source:
    from snapkit.diff import load_source

    if files is not None and not Path(files).is_dir():
        raise UsageError(f"--files {files!r} is not a folder; give the workspace root")
    return load_source(
        shell.user_ns,
        files=files,
        exclude=_hidden_names(shell),
        on_unpicklable="skip",
        **capture_options,
    )


def _diff(shell: InteractiveShell, args: argparse.Namespace) -> None:
    from snapkit.diff import diff_sources

    with _open(args.source) as snap:
        before = _snapshot_source(snap, args.source)
        # Without --files the namespace side has no files, so the diff
        # compares objects only; say how to bring the files in.
        if args.files is None and before.manifest.files:
            print(
                f"(files not compared: give --files DIR to compare the "
                f"{len(snap.manifest.files)} files of the snapshot)"
            )
        after = _live_source(shell, args.files)
        print(diff_sources(before, after).render(), end="")


def _audit(shell: InteractiveShell, args: argparse.Namespace) -> None:
    from snapkit.audit import audit

    if args.source is None:
        report = audit(_live_source(shell, args.files), budget=args.budget)
    else:
        if args.files is not None:
            raise UsageError("--files measures the live namespace; drop SOURCE")
        with _open(args.source) as snap:
            report = audit(_snapshot_source(snap, args.source), budget=args.budget)
    print(report.render(), end="")
    if not report.ok:
        for v in report.violations:
            sys.stderr.write(f"snapkit: {v.describe()}\n")


_COMMANDS: Mapping[str, Callable[[InteractiveShell, argparse.Namespace], None]] = {
    "save": _save,
    "load": _load,
    "diff": _diff,
    "audit": _audit,
}


# -- registration ------------------------------------------------------------------


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """Register the ``%snapkit`` line magic (``%load_ext snapkit`` calls this)."""

    def snapkit(line: str) -> None:
        run(ipython, line)

    snapkit.__doc__ = _parser().format_help()
    # Typed through a decorator that mypy cannot see through.
    register: Any = ipython.register_magic_function
    register(snapkit, magic_kind="line", magic_name=MAGIC_NAME)


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    """Remove the ``%snapkit`` magic (``%unload_ext snapkit`` calls this)."""
    ipython.magics_manager.magics["line"].pop(MAGIC_NAME, None)
