"""Ignore rules for the files part of a workspace, with git's semantics.

A scan judges every path it visits against three layers, highest first:

1. ``--exclude`` patterns given by the caller (anchored at the root);
2. ``.snapignore`` files, read like git reads ``.gitignore``: one per
   directory, patterns relative to that directory, the deepest file checked
   first and, within a file, the last matching pattern deciding;
3. the built-in defaults (:data:`DEFAULT_PATTERNS` and virtualenv detection),
   which behave like git's ``core.excludesFile``: any ``.snapignore`` pattern,
   including a ``!negation``, overrides them.

The first layer with a matching pattern gives the verdict. ``--include``
patterns are applied after all three: a path they match is kept whatever the
layers said. Secrets (:data:`SECRET_PATTERNS`) are judged last and only an
explicit ``allow_secrets`` keeps them; see :mod:`snapkit.workspace.files`.

Pattern syntax is parsed by :mod:`pathspec` (``GitIgnoreSpec``). Its matcher,
however, is built for flat lists of paths: a pattern that matches a directory
also matches every path below it, and it re-ranks directory matches. A tree
walk never looks inside an excluded directory, so here each pattern must match
the path *itself*, exactly as git's ``wildmatch`` does; :class:`Rule` wraps
pathspec's compiled expression to enforce that. The git oracle tests in
``tests/workspace/test_ignore.py`` hold the two in agreement.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import pathspec

__all__ = [
    "DEFAULT_PATTERNS",
    "IGNORE_FILE",
    "SECRET_PATTERNS",
    "VIRTUALENV_MARKER",
    "IgnoreFile",
    "Rule",
    "RuleSet",
    "compile_patterns",
    "is_secret",
]

log = logging.getLogger(__name__)

#: Name of the per-directory ignore file.
IGNORE_FILE = ".snapignore"

#: Built-in defaults, in gitignore syntax: caches, VCS data, virtualenvs and
#: snapkit's own archives never belong in a snapshot.
DEFAULT_PATTERNS: tuple[str, ...] = (
    ".git/",
    ".hg/",
    ".svn/",
    "__pycache__/",
    "*.pyc",
    "*.pyo",
    ".ipynb_checkpoints/",
    ".venv/",
    ".snapkit/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".tox/",
    "node_modules/",
    "*.snap",
    ".DS_Store",
)

#: A directory holding this file is a virtualenv, whatever its name.
VIRTUALENV_MARKER = "pyvenv.cfg"

#: File names (shell globs on the last path component) that usually hold
#: credentials. They are left out unless the caller allows secrets.
SECRET_PATTERNS: tuple[str, ...] = (
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    ".netrc",
    ".pgpass",
    "credentials.json",
    "*.p12",
    "*.pfx",
    ".htpasswd",
    "secrets.*",
)

# The named group pathspec puts on the "/" that marks a directory match.
_DIR_MARK = "ps_d"


def is_secret(name: str) -> bool:
    """Return whether a file name (last path component) looks like a secret."""
    return any(fnmatch.fnmatchcase(name, pat) for pat in SECRET_PATTERNS)


@dataclass(frozen=True)
class Rule:
    """One compiled pattern and where it came from.

    ``label`` is how a scan reports the rule that excluded a path, for example
    ``.snapignore:3: *.csv`` or ``--exclude *.log``.
    """

    text: str
    negated: bool
    label: str
    #: Matched against the path with a trailing "/" for a directory; a
    #: directory marker must end the string (see :meth:`matches`).
    _marked: re.Pattern[str] | None
    #: Matched against the bare path; used for expressions without a marker.
    _bare: re.Pattern[str] | None

    def matches(self, path: str, is_dir: bool) -> bool:
        """Return whether the pattern matches ``path`` itself (not a parent).

        ``path`` is POSIX and relative to the directory the pattern belongs to.
        """
        if self._marked is not None:
            return self._marked.search(path + "/" if is_dir else path) is not None
        assert self._bare is not None
        return self._bare.search(path) is not None


def _rewrite(text: str) -> str:
    # pathspec folds "a/**/" into "a/**" plus a directory marker, which would
    # match "a" itself; git reads it as "any directory below a", which is
    # exactly what "a/**/*/" says and pathspec translates faithfully.
    body = text.rstrip()
    if body.endswith("/**/"):
        return body + "*/"
    return text


def _compile_one(text: str, label: str) -> Rule | None:
    """Compile one pattern line; None for blanks, comments and no-op lines."""
    try:
        compiled = pathspec.GitIgnoreSpec.from_lines([_rewrite(text)]).patterns
    except (ValueError, re.error) as exc:
        # git silently drops a pattern it cannot parse; say so, then do the same.
        log.warning("ignoring invalid pattern %r (%s): %s", text, label, exc)
        return None
    if not compiled:
        return None
    pattern = compiled[0]
    regex = getattr(pattern, "regex", None)
    include = getattr(pattern, "include", None)
    if regex is None or include is None:
        return None
    source = regex.pattern
    if _DIR_MARK in regex.groupindex:
        # A directory marker only counts at the very end: "dir/" must match
        # the directory, not any path that merely passes through it.
        marked = re.compile(f"(?:{source})(?({_DIR_MARK})\\Z)")
        return Rule(text, not include, label, marked, None)
    # Without a marker the expression is either "match everything" or ends in
    # "/" (a trailing "**"): matched against the bare path, it needs something
    # strictly below the prefix, as git's "a/**" does.
    return Rule(text, not include, label, None, re.compile(source))


def compile_patterns(lines: Iterable[str], source: str) -> list[Rule]:
    """Compile gitignore-syntax lines into rules labelled by ``source``.

    ``source`` is ``"default"``, ``"--exclude"``, ``"--include"`` or the path
    of an ignore file; for a file the label carries the line number.
    """
    rules = []
    from_file = source not in ("default", "--exclude", "--include")
    for number, line in enumerate(lines, start=1):
        if from_file:
            label = f"{source}:{number}: {line.strip()}"
        elif source == "default":
            label = f"default: {line}"
        else:
            label = f"{source} {line}"
        rule = _compile_one(line, label)
        if rule is not None:
            rules.append(rule)
    return rules


def last_match(rules: Sequence[Rule], path: str, is_dir: bool) -> Rule | None:
    """Return the last rule matching ``path`` (git's "last one wins")."""
    for rule in reversed(rules):
        if rule.matches(path, is_dir):
            return rule
    return None


@dataclass(frozen=True)
class IgnoreFile:
    """The rules of one ``.snapignore``, relative to its directory ``base``."""

    base: str  # POSIX path of the directory, "" for the root
    rules: list[Rule]

    def relative(self, path: str) -> str:
        return path[len(self.base) + 1 :] if self.base else path


@dataclass(frozen=True)
class Verdict:
    """The outcome for one path: excluded or not, and by which rule."""

    excluded: bool
    reason: str | None  # label of the deciding rule, None if no rule matched


class RuleSet:
    """The layers of rules one scan applies; see the module docstring.

    ``judge`` takes the chain of ignore files from the root down to the
    directory holding the path, so nested files are honoured without this
    object knowing the tree.
    """

    def __init__(
        self,
        *,
        exclude: Sequence[str] = (),
        include: Sequence[str] = (),
        use_defaults: bool = True,
    ) -> None:
        self.use_defaults = use_defaults
        self.defaults = compile_patterns(DEFAULT_PATTERNS, "default")
        self.exclude = compile_patterns(exclude, "--exclude")
        self.include = compile_patterns(include, "--include")
        self._include_texts = [r.text for r in self.include if not r.negated]

    def judge(
        self,
        path: str,
        is_dir: bool,
        chain: Sequence[IgnoreFile],
        is_virtualenv: Callable[[], bool] | None = None,
    ) -> Verdict:
        """Decide whether ``path`` (relative to the root) is excluded.

        ``is_virtualenv`` is called only when no pattern decided, so the
        extra ``stat`` it costs is paid only for otherwise kept directories.
        """
        rule = last_match(self.exclude, path, is_dir)
        if rule is None:
            for ignore_file in reversed(chain):
                rule = last_match(ignore_file.rules, ignore_file.relative(path), is_dir)
                if rule is not None:
                    break
        if rule is None and self.use_defaults:
            rule = last_match(self.defaults, path, is_dir)
            if rule is None and is_virtualenv is not None and is_virtualenv():
                return Verdict(True, f"default: virtualenv ({VIRTUALENV_MARKER})")
        if rule is None:
            return Verdict(False, None)
        return Verdict(not rule.negated, rule.label)

    def included(self, path: str, is_dir: bool) -> bool:
        """Return whether an ``--include`` pattern forces ``path`` in."""
        rule = last_match(self.include, path, is_dir)
        return rule is not None and not rule.negated

    def include_may_reach(self, directory: str) -> bool:
        """Return whether an ``--include`` could name a path below ``directory``.

        Only patterns with a directory part are followed into an excluded
        directory (``--include data/raw/x.csv``, ``--include 'data/**'``); a
        bare name such as ``--include '*.csv'`` rescues matching paths only
        where the walk already goes. This keeps an excluded tree unread.
        """
        parts = directory.split("/")
        return any(_prefix_compatible(t, parts) for t in self._include_texts)


def _prefix_compatible(text: str, parts: list[str]) -> bool:
    body = text.strip().strip("/")
    if "/" not in text.strip().rstrip("/"):
        return False
    segments = body.split("/")
    for i, part in enumerate(parts):
        if i >= len(segments):
            return False
        if segments[i] == "**":
            return True
        if not fnmatch.fnmatchcase(part, segments[i]):
            return False
    return len(segments) > len(parts)
