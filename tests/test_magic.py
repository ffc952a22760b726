"""The ``%snapkit`` magic, driven through a real IPython shell.

Every magic runs through ``run_cell``, the path a notebook cell takes, so an
exception that escaped the magic would show up as a failed cell.
"""

from __future__ import annotations

import builtins
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

import snapkit


@pytest.fixture
def shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InteractiveShell]:
    """A fresh shell with the extension loaded, working in ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SNAPKIT_CACHE_DIR", str(tmp_path / "snapkit-cache"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    # IPython marks the interpreter as its own (names in builtins, its module
    # as __main__); the monkeypatch undoes that so later tests see plain Python.
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    for name in ("__IPYTHON__", "display"):
        monkeypatch.setattr(
            builtins, name, getattr(builtins, name, None), raising=False
        )
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    InteractiveShell.clear_instance()
    sh = InteractiveShell.instance(config=config)
    sh.run_line_magic("load_ext", "snapkit")
    try:
        yield sh
    finally:
        if sh.history_manager is not None:
            sh.history_manager.end_session()
        InteractiveShell.clear_instance()


def cell(shell: InteractiveShell, source: str) -> None:
    """Run a cell as a notebook would; fail the test if it raised."""
    result = shell.run_cell(source, store_history=True)
    assert result.success, result.error_in_exec or result.error_before_exec


def define_variables(shell: InteractiveShell) -> None:
    cell(shell, "import numpy as np")
    cell(shell, "arr = np.arange(1000.0).reshape(10, 100)")
    cell(shell, "x = 42\nwords = ['a', 'b']")
    cell(shell, "def double(v):\n    return v * 2")
    # Evaluated expressions: IPython keeps them in Out, _, _5, _i5, ...
    cell(shell, "x + 1")
    cell(shell, "arr.sum()")
    assert shell.user_ns["_"] == arr_sum()
    assert len(shell.user_ns["Out"]) == 2


def arr_sum() -> float:
    return float(np.arange(1000.0).sum())


USER_VARIABLES = ["arr", "double", "words", "x"]


# -- save and load ------------------------------------------------------------------


def test_save_captures_exactly_the_user_variables(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    """No In, Out, _, _N, _iN, np or get_ipython: only what the user defined."""
    define_variables(shell)
    capsys.readouterr()

    cell(shell, "%snapkit save -o tmp.snap")

    out = capsys.readouterr().out
    with snapkit.open("tmp.snap") as snap:
        assert snap.objects == USER_VARIABLES
        assert snap.manifest.files == []
        assert f"captured {snap.id[:12]}" in out
    assert "4 objects, 0 files" in out
    for name in USER_VARIABLES:
        assert f"  {name} " in out


def test_load_restores_values_into_a_cleared_namespace(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    """Values come back equal, and a function defined in a cell still runs."""
    define_variables(shell)
    cell(shell, "%snapkit save -o tmp.snap")
    cell(shell, "%reset -f")
    assert "x" not in shell.user_ns
    capsys.readouterr()

    cell(shell, "%snapkit load tmp.snap")

    ns = shell.user_ns
    np.testing.assert_array_equal(ns["arr"], np.arange(1000.0).reshape(10, 100))
    assert ns["x"] == 42
    assert ns["words"] == ["a", "b"]
    assert ns["double"](21) == 42
    # Loaded names are user variables again, for %who and the next save.
    assert "x" not in shell.user_ns_hidden
    out = capsys.readouterr().out
    assert "loaded 4 object(s): arr, double, words, x" in out


def test_load_prints_every_import_before_loading(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    """The imports of each pickle are listed, all before the first load."""
    define_variables(shell)
    cell(shell, "%snapkit save -o tmp.snap")
    cell(shell, "%reset -f")
    capsys.readouterr()

    cell(shell, "%snapkit load tmp.snap")

    lines = capsys.readouterr().out.splitlines()
    listed = [i for i, line in enumerate(lines) if line.startswith("  ")]
    loaded = next(i for i, line in enumerate(lines) if line.startswith("loaded"))
    assert [lines[i].split(":")[0].strip() for i in listed] == USER_VARIABLES
    assert max(listed) < loaded
    assert "numpy" in lines[listed[0]]
    assert lines[listed[-1]] == "  x: nothing"


def test_save_and_load_named_objects(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    """Names pick what is saved and what is loaded; --name and --tag stick."""
    define_variables(shell)
    cell(shell, "%snapkit save -o named.snap --name nb --tag t1 --tag t2 x words")
    with snapkit.open("named.snap") as snap:
        assert snap.objects == ["words", "x"]
        assert snap.name == "nb"
        assert snap.manifest.tags == ["t1", "t2"]

    cell(shell, "%reset -f")
    cell(shell, "%snapkit load named.snap x")
    assert shell.user_ns["x"] == 42
    assert "words" not in shell.user_ns


def test_load_with_a_missing_name_loads_nothing(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    """One bad name: an error line, and the namespace is left untouched."""
    define_variables(shell)
    cell(shell, "%snapkit save -o tmp.snap")
    cell(shell, "%reset -f")
    capsys.readouterr()

    cell(shell, "%snapkit load tmp.snap x nope")

    err = capsys.readouterr().err
    assert err.startswith("snapkit: error: snapshot ")
    assert "'nope'" in err
    assert "x" not in shell.user_ns


def test_unpicklable_variable_names_it_or_is_skipped(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    """A generator fails the save with its name; --skip-unpicklable goes on."""
    cell(shell, "x = 1\ngen = (i for i in range(3))")
    capsys.readouterr()

    cell(shell, "%snapkit save -o tmp.snap")
    err = capsys.readouterr().err
    assert err.startswith("snapkit: error: cannot pickle object 'gen'")
    assert not Path("tmp.snap").exists()

    cell(shell, "%snapkit save -o tmp.snap --skip-unpicklable")
    assert "skipped gen" in capsys.readouterr().err
    with snapkit.open("tmp.snap") as snap:
        assert snap.objects == ["x"]


def test_save_with_files(
    shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--files DIR captures the files too; the default captures none."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "data.csv").write_text("a,b\n1,2\n")
    cell(shell, "x = 1")

    cell(shell, f"%snapkit save -o files.snap --files {work}")

    with snapkit.open("files.snap") as snap:
        assert [f.path for f in snap.manifest.files] == ["data.csv"]


# -- diff -------------------------------------------------------------------------


def test_diff_shows_a_changed_variable(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    """Changing x after the save shows x as changed and nothing else."""
    define_variables(shell)
    cell(shell, "%snapkit save -o tmp.snap")
    cell(shell, "x = 43\nnew = 'added'")
    capsys.readouterr()

    cell(shell, "%snapkit diff tmp.snap")

    out = capsys.readouterr().out
    assert out.startswith("diff tmp.snap → namespace (live)")
    rows = {line.split()[1]: line.split()[0] for line in out.splitlines()[2:4]}
    assert rows == {"new": "+", "x": "~"}
    assert "arr" not in out


def test_diff_compares_files_only_with_files(
    shell: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --files DIR an edited file shows; without, files are left out."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "data.csv").write_text("a,b\n1,2\n")
    cell(shell, "x = 1")
    cell(shell, f"%snapkit save -o files.snap --files {work}")
    (work / "data.csv").write_text("a,b\n1,2\n3,4\n")
    capsys.readouterr()

    cell(shell, f"%snapkit diff files.snap --files {work}")
    out = capsys.readouterr().out
    assert "data.csv" in out
    assert "no differences" not in out

    cell(shell, "%snapkit diff files.snap")
    out = capsys.readouterr().out
    assert "files not compared" in out
    assert "data.csv" not in out
    assert "no differences" in out


# -- audit ------------------------------------------------------------------------


def test_audit_over_budget_prints_the_violation(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    """Over budget: the report and the violation are printed, nothing raised."""
    cell(shell, "import numpy as np")
    cell(shell, "noise = np.random.default_rng(0).random(10_000)")
    capsys.readouterr()

    cell(shell, "%snapkit audit --budget 1KB")

    captured = capsys.readouterr()
    assert captured.out.startswith("audit of namespace (live)")
    assert "BUDGET EXCEEDED:" in captured.out
    assert "noise" in captured.out
    assert captured.err.startswith("snapkit: budget exceeded: stored total ")
    assert "Traceback" not in captured.out + captured.err


def test_audit_of_a_snapshot_within_budget(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    define_variables(shell)
    cell(shell, "%snapkit save -o tmp.snap")
    capsys.readouterr()

    cell(shell, "%snapkit audit tmp.snap --budget 1MB")

    captured = capsys.readouterr()
    assert captured.out.startswith("audit of tmp.snap (")
    assert "within budget" in captured.out
    assert captured.err == ""


# -- mistakes and registration ----------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "save",
        "save -o a.snap --bogus",
        "save -o a.snap --push",
        "save -o a.snap nothere",
        "frob",
        "load",
        "load missing.snap",
        "load 'unclosed",
        "diff",
        "audit --budget lots",
        "audit --files no/such/dir",
    ],
)
def test_a_mistake_prints_one_error_line(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str], line: str
) -> None:
    """A user mistake never dumps a traceback: one line on stderr, cell succeeds."""
    cell(shell, "x = 1")
    capsys.readouterr()

    cell(shell, f"%snapkit {line}")

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("snapkit: error: ")
    assert captured.err.count("\n") == 1
    assert not Path("a.snap").exists()


def test_help(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    """A bare %snapkit and -h print usage, not an error."""
    cell(shell, "%snapkit")
    assert capsys.readouterr().out.startswith("usage: %snapkit")
    cell(shell, "%snapkit save -h")
    captured = capsys.readouterr()
    assert captured.out.startswith("usage: %snapkit save")
    assert captured.err == ""


def test_unload_removes_the_magic(shell: InteractiveShell) -> None:
    assert shell.find_line_magic("snapkit") is not None
    shell.run_line_magic("unload_ext", "snapkit")
    assert shell.find_line_magic("snapkit") is None


def test_import_snapkit_does_not_import_ipython() -> None:
    """The extension hooks import IPython lazily."""
    code = "import sys, snapkit; assert 'IPython' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
