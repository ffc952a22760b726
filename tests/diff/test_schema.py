"""The JSON document matches the schema published in docs/diff-json.md."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from snapkit.diff import diff
from snapkit.workspace.manifest import FileEntry

from .manifests import iris_manifest, iris_pair

DOCS = Path(__file__).resolve().parents[2] / "docs"


def documented_schema(page: str) -> dict[str, Any]:
    """Return the JSON block that follows the "JSON Schema" heading of a page."""
    text = (DOCS / page).read_text()
    section = text.split("## JSON Schema", 1)[1]
    block = re.search(r"```json\n(.*?)```", section, re.S)
    assert block, f"{page} has no JSON schema block"
    schema: dict[str, Any] = json.loads(block.group(1))
    return schema


def closed(schema: Any) -> Any:
    """A copy of ``schema`` where an object may hold only documented fields.

    The published schema leaves objects open (fields may be added within a
    version); the tests close them so an undocumented field fails.
    """
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed(v) for k, v in schema.items()}
    if "properties" in schema and "additionalProperties" not in schema:
        out["additionalProperties"] = False
    return out


def validate_documented(doc: Any, page: str = "diff-json.md") -> None:
    """Validate ``doc`` (after a JSON round trip) against the page's schema,
    with every field required to be documented."""
    schema = documented_schema(page)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(json.loads(json.dumps(doc)), closed(schema))


def test_iris_diff_matches_documented_schema() -> None:
    """Every field the iris diff emits is documented and typed as documented."""
    a, b = iris_pair()
    validate_documented(diff(a, b).to_json())


def test_an_undocumented_field_fails_validation() -> None:
    """The closed schema is what makes "every field documented" checkable."""
    a, b = iris_pair()
    doc = diff(a, b).to_json()
    doc["totals"]["surprise"] = 1
    with pytest.raises(jsonschema.ValidationError, match="surprise"):
        validate_documented(doc)


def test_every_status_matches_documented_schema() -> None:
    """Added, removed, mode-only and symlink entries validate too."""
    a = iris_manifest()
    b = replace(
        a,
        objects=a.objects[:1],
        files=[
            replace(a.files[2], mode=0o100755),
            FileEntry("link", "symlink", 0o120777, target="train.py"),
        ],
    )
    doc = diff(a, b).to_json()
    statuses = {f["status"] for f in doc["files"]}
    assert statuses == {"added", "removed", "mode"}
    validate_documented(doc)
    validate_documented(diff(b, a).to_json())


def test_documented_example_is_valid() -> None:
    """The example on the page is itself a valid document (ids aside)."""
    text = (DOCS / "diff-json.md").read_text()
    example = text.split("## Example", 1)[1]
    block = re.search(r"```json\n(.*?)```", example, re.S)
    assert block
    doc = json.loads(block.group(1))
    doc["a"]["id"] = doc["b"]["id"] = "0" * 64
    validate_documented(doc)
