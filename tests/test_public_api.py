"""The public surface: `snapkit.__all__` is complete and every name resolves."""

from __future__ import annotations

import importlib

import snapkit
from snapkit import errors


def test_every_name_in_all_resolves() -> None:
    """Each name in __all__ is importable from the package, lazy ones included."""
    for name in snapkit.__all__:
        assert getattr(snapkit, name) is not None, name


def test_design_interfaces_are_public() -> None:
    """The names the design brief promises are all in __all__."""
    promised = {"capture", "open", "restore", "diff", "audit", "Client", "errors"}
    assert promised <= set(snapkit.__all__)


def test_lazy_names_are_the_real_objects() -> None:
    """Client, diff and audit resolve to the objects in their own modules."""
    assert snapkit.Client is importlib.import_module("snapkit.remote.client").Client
    assert snapkit.diff is importlib.import_module("snapkit.diff").diff
    assert snapkit.audit is importlib.import_module("snapkit.audit").audit


def test_every_error_family_has_an_exit_code_and_a_builtin_twin_where_fitting() -> None:
    """Each exception in snapkit.errors descends from SnapkitError with a code."""
    classes = [
        getattr(errors, n)
        for n in errors.__all__
        if isinstance(getattr(errors, n), type)
    ]
    for cls in classes:
        assert issubclass(cls, errors.SnapkitError), cls
        assert isinstance(cls.exit_code, int), cls
    assert issubclass(errors.UsageError, ValueError)
    assert issubclass(errors.NotFoundError, LookupError)
    assert issubclass(errors.OverwriteError, FileExistsError)
    assert issubclass(errors.StorageError, OSError)
    assert errors.exit_code_for(RuntimeError("x")) == 10
    assert errors.exit_code_for(OSError(28, "No space left on device")) == 9
    assert errors.exit_code_for(OSError(2, "No such file or directory")) == 10
    assert {c.exit_code for c in classes} == {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}


def test_unknown_attribute_raises_attribute_error() -> None:
    """A misspelt name fails like any module attribute would."""
    try:
        snapkit.captrue  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "captrue" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
