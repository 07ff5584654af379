"""The public API is what it means to be."""

from __future__ import annotations

import harness
from harness import errors


def test_public_names_are_sorted_and_exist() -> None:
    assert harness.__all__ == sorted(harness.__all__)
    for name in harness.__all__:
        assert getattr(harness, name) is not None


def test_one_exception_tree_with_exit_codes() -> None:
    for name in errors.__all__:
        error_type = getattr(errors, name)
        assert issubclass(error_type, errors.HarnessError)
    assert errors.UsageError("x").exit_code == 2
    assert errors.RunFolderError("x").exit_code == 2
    assert errors.TargetStartError("x").exit_code == 1
    assert errors.HarnessError("x", exit_code=7).exit_code == 7
