"""``.snapignore`` semantics, checked against git itself as the oracle."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapkit.workspace.files import scan
from snapkit.workspace.ignore import (
    RuleSet,
    compile_patterns,
    is_secret,
    last_match,
)

GIT = shutil.which("git")
needs_git = pytest.mark.usefixtures("git_tool")

IGNORE_NAMES = {".gitignore", ".snapignore"}


def _git_env(home: Path) -> dict[str, str]:
    # Keep the developer's own git config and global excludes out of the oracle.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "xdg"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
    )
    return env


def git_kept(tree: Path, scratch: Path) -> set[str]:
    """Return the untracked files git does not ignore under ``tree``."""
    git_dir = scratch / "gitdir"
    env = _git_env(scratch)
    env.update(GIT_DIR=str(git_dir), GIT_WORK_TREE=str(tree))
    assert GIT is not None
    subprocess.run([GIT, "init", "-q"], env=env, check=True, cwd=tree)
    out = subprocess.run(
        [
            GIT,
            "-c",
            "core.excludesFile=",
            "ls-files",
            "--others",
            "--exclude-standard",
            "-z",
        ],
        env=env,
        check=True,
        cwd=tree,
        capture_output=True,
    ).stdout
    paths = {p for p in out.decode().split("\0") if p}
    return {p for p in paths if p.rpartition("/")[2] not in IGNORE_NAMES}


def snapkit_kept(tree: Path) -> set[str]:
    """Return the files and links snapkit keeps, judged by rules alone."""
    result = scan(tree, use_defaults=False, allow_secrets=True)
    return {
        c.path
        for c in result.entries
        if c.kind != "dir" and c.path.rpartition("/")[2] not in IGNORE_NAMES
    }


def write_tree(root: Path, files: list[str], rules: dict[str, list[str]]) -> None:
    """Create ``files`` and the same rules as both .snapignore and .gitignore."""
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text(f)
    for directory, lines in rules.items():
        where = root / directory
        where.mkdir(parents=True, exist_ok=True)
        text = "".join(line + "\n" for line in lines)
        (where / ".snapignore").write_text(text)
        (where / ".gitignore").write_text(text)


ORACLE_FILES = [
    "app.log",
    "important.log",
    "notes.txt",
    "build/out.o",
    "build/keep.txt",
    "src/build/gen.py",
    "src/build.py",
    "src/main.py",
    "src/debug.log",
    "src/important.log",
    "src/deep/important.log",
    "logs/today.txt",
    "logs.txt",
    "src/logs",
    "docs/index.md",
    "docs/guide/intro.md",
    "docs/guide/intro.txt",
    "docs/guide/deeper/x.md",
    "other/docs/readme.md",
    "a/b",
    "a/x/b",
    "a/x/y/b/file.txt",
    "a/bb",
    "a/x/c",
    "data/raw/one.csv",
    "data/raw/two.csv",
    "data/clean/one.csv",
    "data/README",
    "tmp/cache/blob",
    "tmp/keep/me.txt",
    "vendor/lib/keep.me",
    "vendor/lib/drop.me",
    "vendor/keep.me",
    "name with space.txt",
    "#hash.txt",
    "!bang.txt",
]

ORACLE_RULES = {
    "": [
        "# comments and blank lines are no-ops",
        "",
        "*.log",
        "!important.log",
        "/build/",
        "logs/",
        "docs/**/*.md",
        "!docs/index.md",
        "a/**/b",
        "data/raw/",
        "!data/raw/one.csv",
        "tmp/*",
        "!tmp/keep/",
        "vendor/**/drop.me",
        "name\\ with\\ space.txt",
        "\\#hash.txt",
        "\\!bang.txt",
    ],
    "src": [
        "!debug.log",
        "build/",
        "/deep/important.log",
        "logs",
    ],
    "data": ["clean", "!/clean/one.csv"],
    "vendor/lib": ["!drop.me", "*.me", "!keep.me"],
}


@needs_git
def test_nested_snapignore_matches_git(tmp_path: Path) -> None:
    """Nested ignore files with negation, anchors, ** and dir-only agree with git."""
    tree = tmp_path / "tree"
    write_tree(tree, ORACLE_FILES, ORACLE_RULES)

    expected = git_kept(tree, tmp_path)

    assert snapkit_kept(tree) == expected
    # The oracle has to be telling us something on both sides.
    assert "src/build.py" in expected and "build/out.o" not in expected
    assert "src/debug.log" in expected and "src/deep/important.log" not in expected


@needs_git
def test_ignored_lists_the_rule_that_excluded_each_path(tmp_path: Path) -> None:
    """Each ignored path names its ignore file, line number and pattern."""
    write_tree(tmp_path, ORACLE_FILES, ORACLE_RULES)

    ignored = dict(scan(tmp_path, use_defaults=False).ignored)

    assert ignored["app.log"] == ".snapignore:3: *.log"
    assert ignored["build"] == ".snapignore:5: /build/"
    assert ignored["src/build"] == "src/.snapignore:2: build/"
    assert ignored["vendor/lib/drop.me"] == "vendor/lib/.snapignore:2: *.me"
    # Paths inside an excluded directory are never looked at, so never listed.
    assert not any(p.startswith("build/") for p in ignored)


@needs_git
def test_directory_excluded_by_parent_cannot_be_reincluded(tmp_path: Path) -> None:
    """As in git, a negation cannot reach into a directory excluded above it."""
    rules = {"": ["out/", "!out/keep.txt"], "out": ["!keep.txt"]}
    write_tree(tmp_path / "t", ["out/keep.txt", "out/drop.txt", "in.txt"], rules)

    kept = snapkit_kept(tmp_path / "t")

    assert kept == git_kept(tmp_path / "t", tmp_path) == {"in.txt"}


@needs_git
def test_directory_only_patterns_skip_files_and_symlinks(tmp_path: Path) -> None:
    """A trailing-slash pattern matches directories, not same-named files or links."""
    tree = tmp_path / "t"
    write_tree(tree, ["cache/a", "sub/cache", "x/y/z"], {"": ["cache/", "y/"]})
    (tree / "linked").mkdir()
    os.symlink("../x", tree / "linked" / "y")

    kept = snapkit_kept(tree)

    assert kept == git_kept(tree, tmp_path)
    assert kept == {"sub/cache", "linked/y"}


# -- random trees against git --------------------------------------------------

NAMES = ["a", "b", "build", "logs", "x.log", "keep.log", "docs", "c.md", "d"]
PATTERNS = [
    "*.log",
    "!keep.log",
    "!*.log",
    "build",
    "/build",
    "build/",
    "/build/",
    "logs/",
    "!logs/",
    "a/**/b",
    "**/b",
    "a/**",
    "a/**/",
    "docs/**/*.md",
    "!*.md",
    "*.md",
    "b",
    "/a",
    "a/b",
    "!a/b",
    "*/",
    "!*/",
    "*",
    "!b",
    "d/*",
    "!d/a",
    "**/d/**",
    "x.*",
    "[ab]",
    "?.md",
    "**/",
    "/*",
    "*/b",
    "a/*/b",
    "!/a",
    "b/**/c.md",
    "**/logs",
]

segment = st.sampled_from(NAMES)
rel_path = st.lists(segment, min_size=1, max_size=3).map("/".join)


def _consistent(paths: list[str]) -> list[str]:
    """Drop paths that would need a file and a directory of the same name."""
    files: list[str] = []
    dirs: set[str] = set()
    for p in sorted(set(paths), key=lambda p: (-p.count("/"), p)):
        parents = p.split("/")[:-1]
        prefixes = {"/".join(parents[: i + 1]) for i in range(len(parents))}
        if p in dirs or any(f in prefixes for f in files):
            continue
        files.append(p)
        dirs |= prefixes
    return files


@needs_git
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    files=st.lists(rel_path, min_size=1, max_size=12),
    root_rules=st.lists(st.sampled_from(PATTERNS), max_size=5),
    nested=st.lists(
        st.tuples(
            st.lists(segment, min_size=1, max_size=2).map("/".join),
            st.lists(st.sampled_from(PATTERNS)),
        ),
        max_size=2,
    ),
)
def test_random_trees_match_git(
    files: list[str],
    root_rules: list[str],
    nested: list[tuple[str, list[str]]],
) -> None:
    """For random trees and pattern sets, snapkit keeps exactly what git keeps."""
    kept_files = _consistent(files)
    file_set = set(kept_files)
    rules: dict[str, list[str]] = {"": root_rules}
    for directory, lines in nested:
        # A nested ignore file only where that path is (or can be) a directory.
        parts = directory.split("/")
        prefixes = {"/".join(parts[: i + 1]) for i in range(len(parts))}
        if not prefixes & file_set:
            rules[directory] = lines[:4]
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        tree = scratch / "tree"
        write_tree(tree, kept_files, rules)

        assert snapkit_kept(tree) == git_kept(tree, scratch)


# -- units ---------------------------------------------------------------------


def test_pattern_matches_the_path_itself_not_its_parents() -> None:
    """A directory pattern does not match files below the directory by itself."""
    rules = compile_patterns(["build/", "a/**", "*.md"], "--exclude")

    assert last_match(rules, "build", is_dir=True) is rules[0]
    assert last_match(rules, "build/x.py", is_dir=False) is None
    assert last_match(rules, "build", is_dir=False) is None
    assert last_match(rules, "a", is_dir=True) is None
    assert last_match(rules, "a/b/c", is_dir=False) is rules[1]
    assert last_match(rules, "docs/x.md", is_dir=False) is rules[2]


def test_invalid_pattern_is_dropped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A pattern pathspec cannot compile is skipped and logged, like git drops it."""
    rules = compile_patterns(["a/[z-a]", "ok"], "x/.snapignore")

    assert [r.text for r in rules] == ["ok"]
    assert rules[0].label == "x/.snapignore:2: ok"
    assert "a/[z-a]" in caplog.text


def test_include_reaches_only_through_named_directories() -> None:
    """include_may_reach follows patterns with a directory part, not bare names."""
    rules = RuleSet(include=["data/raw/x.csv", "*.csv", "lib/**"])

    assert rules.include_may_reach("data")
    assert rules.include_may_reach("data/raw")
    assert not rules.include_may_reach("data/clean")
    assert not rules.include_may_reach("node_modules")
    assert rules.include_may_reach("lib/deep")


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        (".env", True),
        (".env.local", True),
        ("server.pem", True),
        ("id_ed25519", True),
        ("secrets.yaml", True),
        ("credentials.json", True),
        ("environment.yml", False),
        ("id_rsa.pub", False),
        ("keys.py", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    """Secret detection looks at the file name only, with shell globs."""
    assert is_secret(name) is secret
