"""The command line, the same tests against an archive and a real server.

Most tests invoke the CLI in process with click's runner; the ones at the end
run ``python -m snapkit`` as a child process to check what a shell sees:
exit codes, and a user mistake reported in one line without a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import snapkit
from snapkit.cli import COMMAND_MODULES
from snapkit.cli._common import split_names
from tests.cli.conftest import Backend, read_tree, write_tree

TRAIN = """\
import numpy as np

weights = np.arange(1000, dtype=np.float64).reshape(100, 10)
notes = {"epochs": 3, "label": "cli test"}
scratch = list(range(50))
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A small working folder: text, binary noise, a subfolder, a script."""
    noise = np.random.default_rng(7).bytes(48_000)
    return write_tree(
        tmp_path / "ws",
        {
            "data.csv": "a,b\n" + "".join(f"{i},{i * i}\n" for i in range(300)),
            "noise.bin": noise,
            "sub/readme.txt": "hello\n",
            "train.py": TRAIN,
        },
    )


def _one_line_error(stderr: str) -> str:
    """Assert stderr is one ``snapkit: error:`` line and return it."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("snapkit: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def _created(backend: Backend, workspace: Path) -> str:
    """A snapshot of ``workspace`` with two objects kept from train.py."""
    return backend.create(
        workspace, "--run", str(workspace / "train.py"), "--keep", "weights,notes"
    )


# -- both backends ------------------------------------------------------------


def test_show_prints_objects_libraries_and_files(
    backend: Backend, workspace: Path
) -> None:
    """show names everything in the snapshot, by full SOURCE or abbreviated."""
    source = _created(backend, workspace)

    result = backend.run("show", backend.short(source))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("snapshot ")
    for word in ("objects (2)", "weights", "numpy.ndarray", "notes", "data.csv"):
        assert word in result.stdout
    assert "sub/readme.txt" in result.stdout

    result = backend.run("show", source, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["name"] == "ws"
    assert len(doc["id"]) == 64
    assert backend.kind == "archive" or doc["id"] == source
    assert {o["name"] for o in doc["objects"]} == {"weights", "notes"}
    weights = next(o for o in doc["objects"] if o["name"] == "weights")
    assert weights["raw_size"] >= 8000
    assert "numpy" in " ".join(weights["imports"])
    paths = {f["path"] for f in doc["files"]}
    assert paths == {"data.csv", "noise.bin", "sub/readme.txt", "train.py"}
    assert doc["totals"]["files"] == 4 and doc["totals"]["objects"] == 2
    assert "numpy" in {r["name"] for r in doc["libraries"]["required"]}


def test_restore_is_byte_identical_and_refuses_changed_files(
    backend: Backend, workspace: Path, tmp_path: Path
) -> None:
    """restore --into writes the files; a changed file needs --force."""
    source = backend.short(_created(backend, workspace))
    out = tmp_path / "out"

    result = backend.run("restore", source, "--into", out, "--json")
    assert result.exit_code == 0, result.stderr
    assert read_tree(out) == read_tree(workspace)
    assert len(json.loads(result.stdout)["written"]) == 4

    result = backend.run("restore", source, "--into", out, "--json")
    assert result.exit_code == 0, result.stderr
    again = json.loads(result.stdout)
    assert again["written"] == []
    assert len(again["unchanged"]) == 4

    (out / "data.csv").write_text("edited by hand\n")
    result = backend.run("restore", source, "--into", out)
    assert result.exit_code == 7
    assert "data.csv" in _one_line_error(result.stderr)
    assert (out / "data.csv").read_text() == "edited by hand\n"

    result = backend.run("restore", source, "--into", out, "--force")
    assert result.exit_code == 0, result.stderr
    assert read_tree(out) == read_tree(workspace)


def test_requirements_pins_what_the_objects_import(
    backend: Backend, workspace: Path
) -> None:
    source = _created(backend, workspace)

    result = backend.run("requirements", backend.short(source))
    assert result.exit_code == 0, result.stderr
    assert f"numpy=={np.__version__}" in result.stdout.splitlines()
    assert result.stdout.startswith("# snapshot ")


def test_diff_names_the_edited_file(backend: Backend, workspace: Path) -> None:
    a = backend.create(workspace)
    (workspace / "data.csv").write_text("a,b\n1,2\n")
    (workspace / "new.txt").write_text("added\n")
    b = backend.create(workspace)

    result = backend.run("diff", backend.short(a), backend.short(b))
    assert result.exit_code == 0, result.stderr
    assert "data.csv" in result.stdout and "new.txt" in result.stdout

    result = backend.run("diff", a, b, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["schema"] == "snapkit.diff/1"
    assert doc["changed"] is True
    status = {f["path"]: f["status"] for f in doc["files"]}
    assert status == {"data.csv": "modified", "new.txt": "added"}


def test_audit_reports_and_the_budget_gate_fails(
    backend: Backend, workspace: Path
) -> None:
    source = backend.short(_created(backend, workspace))

    result = backend.run("audit", source, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["schema"] == "snapkit.audit/1"
    assert doc["violations"] == []

    result = backend.run("audit", source, "--budget", "1KB")
    assert result.exit_code == 1
    assert "budget" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_snapshot_is_not_found(backend: Backend, workspace: Path) -> None:
    """An id that names nothing exits 4, in one line that names it."""
    source = backend.create(workspace)
    unknown = "f00dfacecafe" if source[0] != "f" else "0ddba11cafe0"
    if backend.kind == "archive":
        unknown = f"{source}#{unknown}"

    for command in ("show", "requirements", "audit"):
        result = backend.run(command, unknown)
        assert result.exit_code == 4, (command, result.stdout, result.stderr)
        assert unknown.rsplit("#")[-1] in _one_line_error(result.stderr)


def test_path_that_is_nothing_is_a_usage_error(
    backend: Backend, tmp_path: Path
) -> None:
    missing = tmp_path / "no" / "such.snap"
    result = backend.run("show", missing)
    assert result.exit_code == 2
    assert "such.snap" in _one_line_error(result.stderr)


# -- the server only ------------------------------------------------------------


def test_ls_lists_exactly_this_users_snapshots(
    server_backend: Backend,
    workspace: Path,
    base_env: dict[str, str | None],
    server: snapkit.server.EmbeddedServer,
) -> None:
    mine = [server_backend.create(workspace, "--name", f"n{i}") for i in range(2)]
    other = Backend(
        "server",
        server_backend.home,
        {
            **base_env,
            "SNAPKIT_URL": server.url,
            "SNAPKIT_TOKEN": server.add_user("someone-else"),
        },
    )
    (workspace / "theirs.txt").write_text("not yours\n")
    theirs = other.create(workspace)

    result = server_backend.run("ls", "--json")
    assert result.exit_code == 0, result.stderr
    listed = json.loads(result.stdout)
    assert sorted(s["id"] for s in listed) == sorted(mine)
    assert {s["name"] for s in listed} == {"n0", "n1"}

    result = server_backend.run("show", theirs)
    assert result.exit_code == 4
    _one_line_error(result.stderr)


def test_rm_removes_the_snapshot(server_backend: Backend, workspace: Path) -> None:
    source = server_backend.create(workspace)

    result = server_backend.run("rm", source[:8])
    assert result.exit_code == 0, result.stderr
    assert source in result.stdout

    result = server_backend.run("ls", "--json")
    assert json.loads(result.stdout) == []
    result = server_backend.run("show", source)
    assert result.exit_code == 4
    _one_line_error(result.stderr)


def test_pull_writes_an_archive_that_verifies(
    server_backend: Backend, workspace: Path, tmp_path: Path
) -> None:
    source = _created(server_backend, workspace)
    pulled = tmp_path / "out.snap"

    result = server_backend.run("pull", source[:8], "-o", pulled)
    assert result.exit_code == 0, result.stderr
    result = server_backend.run("verify", pulled)
    assert result.exit_code == 0, result.stderr
    assert "ok" in result.stdout

    result = server_backend.run("show", pulled, "--json")
    assert json.loads(result.stdout)["id"] == source


# -- the archive only -----------------------------------------------------------


def test_verify_detects_a_flipped_byte(
    archive_backend: Backend, workspace: Path
) -> None:
    source = Path(archive_backend.create(workspace, "--level", "1"))
    result = archive_backend.run("verify", source)
    assert result.exit_code == 0, result.stderr

    # noise.bin is incompressible, so most of the archive is its raw bytes.
    data = bytearray(source.read_bytes())
    data[len(data) // 3] ^= 0x01
    source.write_bytes(bytes(data))

    result = archive_backend.run("verify", source)
    assert result.exit_code == 3
    assert "damaged" in result.stderr
    assert "Traceback" not in result.stderr


# -- create ---------------------------------------------------------------------


def test_split_names_reads_repeated_comma_separated_options() -> None:
    """One reading of `--keep a,b --keep c` for create and audit alike."""
    assert split_names(("model, iris", "", " ,scratch,", "score")) == [
        "model",
        "iris",
        "scratch",
        "score",
    ]
    assert split_names(()) == []


def test_create_run_keeps_exactly_the_named_globals(
    archive_backend: Backend, workspace: Path
) -> None:
    source = archive_backend.create(
        workspace,
        "--run",
        str(workspace / "train.py"),
        "--keep",
        "notes",
        "--keep",
        "scratch",
        "--no-files",
    )
    with snapkit.open(source) as snap:
        assert sorted(snap.objects) == ["notes", "scratch"]
        assert snap.manifest.files == []
        assert snap.load("scratch") == list(range(50))


def test_create_dry_run_writes_nothing(
    archive_backend: Backend, workspace: Path, tmp_path: Path
) -> None:
    before = sorted(p for p in tmp_path.rglob("*"))
    result = archive_backend.run("create", workspace, "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["dry_run"] is True and doc["files"] == 4
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_create_needs_exactly_one_destination(
    archive_backend: Backend, workspace: Path, tmp_path: Path
) -> None:
    result = archive_backend.run(
        "create", workspace, "-o", tmp_path / "x.snap", "--dry-run"
    )
    assert result.exit_code == 2
    assert "exactly one" in _one_line_error(result.stderr)


@pytest.mark.parametrize("name", COMMAND_MODULES)
def test_every_command_has_help(archive_backend: Backend, name: str) -> None:
    result = archive_backend.run(name, "--help")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"Usage: main {name}") or "Usage:" in (
        result.stdout
    )


def test_version(archive_backend: Backend) -> None:
    result = archive_backend.run("--version")
    assert result.exit_code == 0
    assert snapkit.__version__ in result.stdout


# -- a real child process -------------------------------------------------------


def _snapkit(
    backend: Backend, *args: str | os.PathLike[str]
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPKIT_")}
    env.update({k: v for k, v in backend.env.items() if v is not None})
    return subprocess.run(
        [sys.executable, "-m", "snapkit", *map(os.fspath, args)],
        env=env,
        cwd=backend.home,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_child_process_create_show_and_unknown_id(
    backend: Backend, workspace: Path
) -> None:
    """What a shell sees: 0 on success, 4 and one line for an unknown id."""
    if backend.kind == "archive":
        create = ("create", workspace, "-o", "x.snap", "--json")
    else:
        create = ("create", workspace, "--push", "--json")
    done = _snapkit(backend, *create)
    assert done.returncode == 0, done.stderr
    snapshot_id = json.loads(done.stdout)["id"]
    source = "x.snap" if backend.kind == "archive" else snapshot_id[:12]

    done = _snapkit(backend, "show", source, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"] == snapshot_id

    unknown = "0000feed" if not snapshot_id.startswith("0") else "ffffeed0"
    if backend.kind == "archive":
        unknown = f"x.snap#{unknown}"
    done = _snapkit(backend, "show", unknown)
    assert done.returncode == 4, done.stderr
    _one_line_error(done.stderr)
    assert done.stdout == ""


def test_child_process_user_mistakes_are_one_line(
    archive_backend: Backend, workspace: Path
) -> None:
    done = _snapkit(archive_backend, "show", "nowhere.snap")
    assert done.returncode == 2
    assert "nowhere.snap" in _one_line_error(done.stderr)

    done = _snapkit(archive_backend, "create", workspace, "--keep", "x", "-o", "y.snap")
    assert done.returncode == 2
    assert "--run" in _one_line_error(done.stderr)
    assert not (archive_backend.home / "y.snap").exists()

    done = _snapkit(archive_backend, "restore")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


# -- removing snapshots from files ------------------------------------------------


def test_rm_in_a_store_then_gc_frees_only_the_removed_content(
    archive_backend: Backend, workspace: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()

    def create() -> str:
        result = archive_backend.run("create", workspace, "-o", store, "--json")
        assert result.exit_code == 0, result.stderr
        return str(json.loads(result.stdout)["id"])

    first = create()
    (workspace / "noise.bin").write_bytes(np.random.default_rng(8).bytes(48_000))
    second = create()

    result = archive_backend.run("rm", f"{store}#{first[:8]}")
    assert result.exit_code == 0, result.stderr
    assert first in result.stdout
    result = archive_backend.run("gc", store, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    # The first snapshot's own noise.bin (and its manifest-only blobs) went.
    assert report["blobs_removed"] >= 1 and report["bytes_freed"] >= 40_000

    result = archive_backend.run("verify", store)
    assert result.exit_code == 0, result.stderr
    assert "1 snapshots" in result.stdout
    result = archive_backend.run("show", f"{store}#{first[:8]}")
    assert result.exit_code == 4
    _one_line_error(result.stderr)
    out = tmp_path / "out"
    result = archive_backend.run("restore", f"{store}#{second[:8]}", "--into", out)
    assert result.exit_code == 0, result.stderr
    assert read_tree(out) == read_tree(workspace)


def test_rm_in_an_archive_rewrites_it_without_the_snapshot(
    archive_backend: Backend, workspace: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "two.snap"

    def create() -> str:
        result = archive_backend.run("create", workspace, "-o", archive, "--json")
        assert result.exit_code == 0, result.stderr
        return str(json.loads(result.stdout)["id"])

    first = create()
    (workspace / "noise.bin").write_bytes(np.random.default_rng(9).bytes(48_000))
    second = create()
    before = archive.stat().st_size

    result = archive_backend.run("rm", f"{archive}#{first[:8]}")
    assert result.exit_code == 0, result.stderr
    assert before - archive.stat().st_size >= 40_000
    result = archive_backend.run("show", archive, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["id"] == second
    result = archive_backend.run("verify", archive)
    assert result.exit_code == 0, result.stderr


def test_create_run_json_keeps_script_output_off_stdout(
    archive_backend: Backend, tmp_path: Path
) -> None:
    """--json stdout stays parseable when the script prints; a skipped object
    is reported once, and the manifest records why, not the advice."""
    script = tmp_path / "job.py"
    script.write_text(
        "import threading\n"
        "print('hello from the script')\n"
        "rows = [1, 2, 3]\n"
        "guard = threading.Lock()\n"
    )
    out = tmp_path / "job.snap"
    result = archive_backend.run(
        "create",
        "--run",
        script,
        "--keep",
        "rows,guard",
        "--skip-unpicklable",
        "--no-files",
        "-o",
        out,
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [o["name"] for o in doc["objects"]] == ["rows"]
    assert "hello from the script" in result.stderr
    assert result.stderr.count("skipped object guard") == 1, result.stderr
    (skipped,) = doc["skipped"]
    assert skipped["name"] == "guard"
    assert "cannot pickle" in skipped["reason"]
    assert "--skip-unpicklable" not in skipped["reason"]
    with snapkit.open(out) as snap:
        assert snap.manifest.skipped[0].reason == skipped["reason"]
