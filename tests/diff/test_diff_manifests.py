"""Diffing two manifests: objects, files, libraries and totals, no blobs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import pytest

from snapkit.diff import compare_versions, diff, format_size
from snapkit.errors import NotFoundError, UsageError
from snapkit.store.repository import Repository, SnapshotInfo, StoredBlob
from snapkit.workspace.manifest import Distribution, FileEntry, Manifest, ObjectEntry

from .manifests import file_entry, iris_manifest, iris_pair, refs


class ManifestOnlyRepository(Repository):
    """Holds manifests; fails the test if anything asks for a blob's bytes."""

    where = "memory"

    def __init__(self, *manifests: Manifest) -> None:
        self.manifests = {m.id: m for m in manifests}
        self.sizes: dict[str, int] = {}

    def missing(self, ids: Iterable[str]) -> set[str]:
        return set(ids) - self.sizes.keys()

    def stored_sizes(self, ids: Iterable[str]) -> dict[str, int]:
        return {i: self.sizes[i] for i in ids if i in self.sizes}

    def put_raw(self, blob: StoredBlob) -> None:
        raise AssertionError("diff wrote a blob")

    def get_raw(self, blob_id: str) -> StoredBlob:
        raise AssertionError(f"diff read blob {blob_id}")

    def add_snapshot(self, manifest: Manifest) -> str:
        self.manifests[manifest.id] = manifest
        return manifest.id

    def snapshots(self) -> list[SnapshotInfo]:
        return [SnapshotInfo.of(m) for m in self.manifests.values()]

    def snapshot(self, snapshot_id: str) -> Manifest:
        for sid, m in self.manifests.items():
            if sid.startswith(snapshot_id):
                return m
        raise NotFoundError(snapshot_id)

    def remove_snapshot(self, snapshot_id: str) -> str:
        raise AssertionError("diff removed a snapshot")


def test_iris_edit_retrain_upgrade_shows_exactly_those_changes() -> None:
    """The CSV edit, the retrained model and the sklearn upgrade, nothing else."""
    a, b = iris_pair()
    d = diff(a, b)

    assert d.changed
    assert [(o.name, o.status) for o in d.objects] == [("model", "changed")]
    assert [(f.path, f.status) for f in d.files] == [("data/iris.csv", "modified")]
    assert d.files[0].size_delta == 1
    assert [
        (c.name, c.status, c.version_before, c.version_after)
        for c in d.libraries.distributions
    ] == [("scikit-learn", "upgraded", "1.4.0", "1.5.0")]
    assert d.libraries.python_before == d.libraries.python_after == "3.11.7"
    assert d.objects[0].changed_share == 1.0

    text = d.render()
    assert "~  model" in text
    assert "~  data/iris.csv  +1 B" in text
    assert "scikit-learn  1.4.0  →  1.5.0  upgraded" in text
    assert "iris " not in text.replace("data/iris.csv", "")
    assert "numpy" not in text and "train.py" not in text

    doc = d.to_json()
    assert doc["schema"] == "snapkit.diff/1"
    assert [o["name"] for o in doc["objects"]] == ["model"]
    assert [f["path"] for f in doc["files"]] == ["data/iris.csv"]
    assert doc["libraries"]["distributions"][0]["status"] == "upgraded"


def test_identical_manifests_have_no_differences() -> None:
    """Diffing a snapshot with itself finds nothing and uploads nothing."""
    m = iris_manifest()
    d = diff(m, m)
    assert not d.changed
    assert d.totals.upload_bytes == 0 and d.totals.blobs_added == 0
    assert d.totals.blobs_shared == len(m.blob_ids())
    assert "no differences" in d.render()


def test_diff_reads_no_blob_and_uses_repository_stored_sizes() -> None:
    """A (repository, id) pair resolves the manifest; blob bytes are never read."""
    a, b = iris_pair()
    repo = ManifestOnlyRepository(a, b)
    fresh = b.blob_ids() - a.blob_ids()
    repo.sizes = dict.fromkeys(b.blob_ids() | a.blob_ids(), 7)

    d = diff((repo, a.id[:8]), (repo, b.id))
    assert d.a_id == a.id and d.b_id == b.id
    assert d.totals.upload_exact
    assert d.totals.upload_bytes == 7 * len(fresh)
    assert d.totals.blobs_added == len(fresh)


def test_totals_count_shared_content_once() -> None:
    """Bytes added/removed are over unique blobs; estimates use stored ratios."""
    a = iris_manifest()
    big = b"y" * 1000
    b = replace(
        a,
        files=[*a.files, file_entry("copy1.bin", big), file_entry("copy2.bin", big)],
    )
    d = diff(a, b)
    assert d.totals.bytes_added == 1000
    assert d.totals.bytes_removed == 0
    assert d.totals.upload_bytes == 500  # file_entry stores half the raw size
    assert not d.totals.upload_exact
    assert [f.status for f in d.files] == ["added", "added"]


def test_array_and_frame_summaries_explain_the_change() -> None:
    """Shape, dtype and column changes come from the summaries; share of chunks."""
    chunks = [bytes([i]) * 100 for i in range(10)]
    arr_a = ObjectEntry(
        "X",
        "numpy.ndarray",
        refs(b"hdr"),
        [refs(*chunks)],
        summary={"shape": [10, 100], "dtype": "float64"},
    )
    arr_b = ObjectEntry(
        "X",
        "numpy.ndarray",
        refs(b"hdr"),
        [refs(*chunks[:9], b"z" * 100)],
        summary={"shape": [10, 100], "dtype": "float32"},
    )
    df_a = ObjectEntry(
        "df",
        "pandas.core.frame.DataFrame",
        refs(b"a"),
        summary={"shape": [3, 2], "columns": ["x", "y"]},
    )
    df_b = ObjectEntry(
        "df",
        "pandas.core.frame.DataFrame",
        refs(b"b"),
        summary={"shape": [3, 2], "columns": ["x", "z"]},
    )
    a = replace(iris_manifest(), objects=[arr_a, df_a])
    b = replace(iris_manifest(), objects=[arr_b, df_b])

    d = diff(a, b)
    by_name = {o.name: o for o in d.objects}
    assert by_name["X"].details == ("dtype float64 → float32",)
    assert by_name["X"].changed_share == pytest.approx(100 / 1003, abs=1e-3)
    assert by_name["df"].details == ("columns added: z", "columns removed: y")
    assert "10% of chunks new" in d.render()


def test_added_and_removed_objects_carry_type_and_size() -> None:
    """An added object shows its summary; a removed one its old size."""
    a = iris_manifest()
    extra = ObjectEntry(
        "scores",
        "numpy.ndarray",
        refs(b"s" * 64),
        summary={"shape": [8], "dtype": "float64"},
    )
    b = replace(a, objects=[extra, *a.objects[1:]])
    d = diff(a, b)
    got = {o.name: o for o in d.objects}
    assert got["scores"].status == "added" and got["scores"].size_after == 64
    assert got["scores"].details == ("shape (8,)", "dtype float64")
    assert got["iris"].status == "removed" and got["iris"].size_after is None
    assert got["iris"].type_before == "pandas.core.frame.DataFrame"


def test_mode_change_alone_and_with_content() -> None:
    """Only the permission bits changed → "mode"; content too → "modified"."""
    a = iris_manifest()
    files = []
    for f in a.files:
        if f.path == "train.py":
            f = replace(f, mode=0o100755)
        files.append(f)
    files.append(FileEntry("run.sh", "file", 0o100755, 3, 0, refs(b"new")))
    b = replace(a, files=files)
    a = replace(
        a, files=[*a.files, FileEntry("run.sh", "file", 0o100644, 3, 0, refs(b"old"))]
    )
    d = diff(a, b)
    got = {f.path: f for f in d.files}
    assert got["train.py"].status == "mode"
    assert got["run.sh"].status == "modified"
    assert got["run.sh"].to_json()["mode_before"] == "0644"
    assert got["run.sh"].to_json()["mode_after"] == "0755"
    assert "mode 0644 → 0755" in d.render()


def test_symlink_target_change_is_a_modification() -> None:
    """A symlink pointing elsewhere is modified even with no blobs."""
    link = FileEntry("latest", "symlink", 0o120777, target="v1")
    a = replace(iris_manifest(), files=[link])
    b = replace(iris_manifest(), files=[replace(link, target="v2")])
    assert [f.status for f in diff(a, b).files] == ["modified"]


def test_libraries_python_required_and_downgrade() -> None:
    """Python version, added/removed/downgraded distributions, required set."""
    a = iris_manifest()
    lib = a.libraries
    b = replace(
        a,
        libraries=replace(
            lib,
            python_version="3.12.1",
            distributions=[
                Distribution("numpy", "1.26.0"),
                Distribution("scikit-learn", "1.4.0"),
                Distribution("scipy", "1.13.0"),
            ],
            required=["numpy", "scikit-learn", "scipy"],
        ),
    )
    d = diff(a, b)
    got = {c.name: c.status for c in d.libraries.distributions}
    assert got == {"numpy": "downgraded", "pandas": "removed", "scipy": "added"}
    assert d.libraries.required_added == ("scipy",)
    assert d.libraries.required_removed == ("pandas",)
    text = d.render()
    assert "python 3.11.7 → 3.12.1" in text
    assert "now required: scipy" in text
    stat = d.render(stat=True)
    assert "libraries: 1 downgraded, 1 removed, 1 added" in stat
    assert "python: 3.11.7 → 3.12.1" in stat


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1.4.0", "1.5.0", -1),
        ("1.10", "1.9", 1),
        ("2.0", "2.0.0", 0),
        ("2.0rc1", "2.0", -1),
        ("1.0.post1", "1.0", 1),
        ("2024.1.1", "2023.12", 1),
        ("1.0-custom-build", "1.0-custom-build", 0),
        ("abc", "abd", -1),
    ],
)
def test_compare_versions(a: str, b: str, expected: int) -> None:
    """PEP 440 ordering, and a tolerant order for versions it rejects."""
    assert compare_versions(a, b) == expected


def test_format_size() -> None:
    """Sizes print in decimal units, as documented for the CLI."""
    assert format_size(999) == "999 B"
    assert format_size(1500) == "1.5 kB"
    assert format_size(-2_000_000) == "-2.0 MB"
    assert format_size(None) == "-"


def test_bad_sources_name_the_value(tmp_path: object) -> None:
    """Unusable sides raise the usage or not-found error naming what was given."""
    with pytest.raises(UsageError, match="int"):
        diff(3, iris_manifest())
    with pytest.raises(NotFoundError, match=r"no-such\.snap"):
        diff("no-such.snap", iris_manifest())
