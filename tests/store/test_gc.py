"""Garbage collection of a local store: real packs on disk, real snapshots."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from strategies import file_manifest

import snapkit
from snapkit.cli import main
from snapkit.store.gc import collect_garbage
from snapkit.store.local import LocalStore


def _workspace(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


def _two_snapshots(tmp_path: Path) -> tuple[Path, str, str, Path]:
    """A store with snapshots 'old' and 'new' sharing one file; each also has
    files of its own. Returns the store, both ids and the 'new' workspace."""
    store_dir = tmp_path / "store"
    LocalStore(store_dir).close()
    shared = os.urandom(50_000)
    old_ws = _workspace(
        tmp_path / "old",
        {"shared.bin": shared, "gone.bin": os.urandom(300_000)},
    )
    new_ws = _workspace(
        tmp_path / "new",
        {"shared.bin": shared, "kept.bin": os.urandom(200_000)},
    )
    old = snapkit.capture(files=old_ws, name="old", to=store_dir)
    old.close()
    new = snapkit.capture(files=new_ws, name="new", to=store_dir)
    new.close()
    return store_dir, old.id, new.id, new_ws


def _disk_bytes(store_dir: Path) -> int:
    return sum(p.stat().st_size for p in store_dir.glob("packs/*/*.pack"))


def test_gc_frees_a_removed_snapshot_and_keeps_the_rest(tmp_path: Path) -> None:
    """Blobs only the removed snapshot named go; the remaining one verifies
    and restores byte for byte."""
    store_dir, old_id, new_id, new_ws = _two_snapshots(tmp_path)
    with LocalStore(store_dir) as store:
        assert isinstance(store, LocalStore)
        old_only = store.snapshot(old_id).blob_ids() - store.snapshot(new_id).blob_ids()
        store.remove_snapshot(old_id)
        before = _disk_bytes(store_dir)
        report = collect_garbage(store)
        assert report.snapshots == 1
        assert report.blobs_removed == len(old_only) > 0
        assert report.bytes_freed == before - _disk_bytes(store_dir) > 290_000
        assert store.missing(old_only) == old_only
        assert store.verify() == []

    # A fresh open sees the same: nothing dangling, nothing damaged.
    with LocalStore(store_dir, create=False) as store:
        assert isinstance(store, LocalStore)
        assert store.verify() == []
        assert [s.id for s in store.snapshots()] == [new_id]
    out = tmp_path / "restored"
    snapkit.restore(f"{store_dir}#{new_id}", into=out)
    for name in ("shared.bin", "kept.bin"):
        assert (out / name).read_bytes() == (new_ws / name).read_bytes()

    # A second run has nothing left to do.
    with LocalStore(store_dir) as store:
        assert isinstance(store, LocalStore)
        again = collect_garbage(store)
        assert (again.blobs_removed, again.bytes_freed) == (0, 0)


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    """A dry run reports what would go and leaves every pack file as it was."""
    store_dir, old_id, _, _ = _two_snapshots(tmp_path)
    with LocalStore(store_dir) as store:
        assert isinstance(store, LocalStore)
        store.remove_snapshot(old_id)
        files_before = {
            p: p.read_bytes() for p in sorted(store_dir.glob("packs/*/*.pack"))
        }
        dry = collect_garbage(store, dry_run=True)
        files_after = {
            p: p.read_bytes() for p in sorted(store_dir.glob("packs/*/*.pack"))
        }
        assert files_after == files_before
        assert dry.dry_run and dry.blobs_removed > 0 and dry.bytes_freed > 0

        real = collect_garbage(store)
        assert real.blobs_removed == dry.blobs_removed
        # The estimate leaves out shrinking indexes, so it is a lower bound.
        assert dry.bytes_freed <= real.bytes_freed


def test_pack_of_only_dead_blobs_is_deleted(tmp_path: Path) -> None:
    """A pack with no live blob is deleted outright, not rewritten."""
    with LocalStore(tmp_path / "s") as store:
        assert isinstance(store, LocalStore)
        keep = store.put(b"live " * 1000)
        store.add_snapshot(file_manifest("live", {"a": [(keep.id, 5000)]}))
        dead = store.put(b"dead " * 1000)
        store.flush()
        assert len(store.pack_names()) == 2
        report = collect_garbage(store)
        assert (report.packs_deleted, report.packs_rewritten) == (1, 0)
        assert store.missing([keep.id, dead.id]) == {dead.id}
        assert len(store.pack_names()) == 1


_CRASH_CHILD = textwrap.dedent(
    """
    import os, sys
    from snapkit.store.gc import collect_garbage
    from snapkit.store.local import LocalStore

    def crash(self, name):
        # The new pack is durable; die before the old one is deleted.
        sys.stdout.write("crashed\\n")
        sys.stdout.flush()
        os._exit(9)

    LocalStore.drop_pack = crash
    collect_garbage(LocalStore(sys.argv[1]))
    """
)


def test_crash_between_new_pack_and_delete_leaves_a_store_that_verifies(
    tmp_path: Path,
) -> None:
    """A child killed after writing the new pack but before deleting the old
    one leaves both on disk; the store verifies, and the next run finishes
    the job, leaving no duplicate."""
    store_dir, old_id, new_id, new_ws = _two_snapshots(tmp_path)
    with LocalStore(store_dir) as store:
        store.remove_snapshot(old_id)
    packs_before = set(store_dir.glob("packs/*/*.pack"))

    done = subprocess.run(
        [sys.executable, "-c", _CRASH_CHILD, str(store_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 9, done.stderr
    assert done.stdout == "crashed\n"
    packs_after = set(store_dir.glob("packs/*/*.pack"))
    assert packs_before < packs_after

    with LocalStore(store_dir, create=False) as store:
        assert isinstance(store, LocalStore)
        assert store.verify() == []
        report = collect_garbage(store)
        assert report.blobs_removed > 0
        assert store.verify() == []
        # No blob is left in two packs.
        seen: list[str] = []
        for name in store.pack_names():
            seen.extend(store.pack_entries(name))
        assert len(seen) == len(set(seen))
    out = tmp_path / "restored"
    snapkit.restore(f"{store_dir}#{new_id}", into=out)
    assert (out / "kept.bin").read_bytes() == (new_ws / "kept.bin").read_bytes()


def test_reader_of_a_dropped_pack_keeps_working(tmp_path: Path) -> None:
    """A blob looked up just before its pack was rewritten can still be read:
    the old pack's reader stays open until the store closes."""
    with LocalStore(tmp_path / "s") as store:
        assert isinstance(store, LocalStore)
        live = store.put(b"live " * 1000)
        store.put(b"dead " * 1000)
        store.add_snapshot(file_manifest("live", {"a": [(live.id, 5000)]}))
        (name,) = store.pack_names()
        reader, entry = store._index[live.id]
        collect_garbage(store)
        assert name not in store.pack_names()
        assert reader.read(entry) == store.get_raw(live.id).data


def test_cli_gc(tmp_path: Path) -> None:
    """`snapkit gc STORE` prints a summary or JSON; --dry-run keeps the packs;
    an archive is answered with a note that it needs nothing."""
    store_dir, old_id, _, _ = _two_snapshots(tmp_path)
    with LocalStore(store_dir) as store:
        store.remove_snapshot(old_id)
    runner = CliRunner()

    dry = runner.invoke(main, ["gc", str(store_dir), "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    planned = json.loads(dry.output)
    assert planned["dry_run"] is True and planned["blobs_removed"] > 0

    done = runner.invoke(main, ["gc", str(store_dir)])
    assert done.exit_code == 0, done.output
    assert f"removed {planned['blobs_removed']} blobs" in done.output

    archive = tmp_path / "a.snap"
    snapkit.capture(files=tmp_path / "new", name="a", to=archive).close()
    note = runner.invoke(main, ["gc", str(archive)])
    assert note.exit_code == 0, note.output
    assert "compacted when written" in note.output

    missing = runner.invoke(main, ["gc", str(tmp_path / "nowhere")])
    assert missing.exit_code == 4


@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry-run"])
def test_empty_store(tmp_path: Path, dry_run: bool) -> None:
    """A store without packs or snapshots has nothing to collect."""
    with LocalStore(tmp_path / "s") as store:
        assert isinstance(store, LocalStore)
        report = collect_garbage(store, dry_run=dry_run)
        assert report.to_dict()["blobs_removed"] == 0
