from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.units import (
    check_writable,
    format_bytes,
    parse_duration,
    parse_size,
    positive_float,
    positive_int,
    writable_path,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4096", 4096), ("64KiB", 65536), ("64kib", 65536), ("2MB", 2_000_000), ("1.5MiB", 1572864), ("0", 0)],
)
def test_sizes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "-1", "12 parsecs", "KiB", "1e"])
def test_bad_sizes_name_the_value(text: str) -> None:
    with pytest.raises(UsageError, match=f"--buf must be a byte count .* but got {text!r}"):
        parse_size(text, what="--buf")


@pytest.mark.parametrize(("text", "expected"), [("2.5", 2.5), ("250ms", 0.25), ("1m", 60.0), ("3s", 3.0)])
def test_durations(text: str, expected: float) -> None:
    assert parse_duration(text) == pytest.approx(expected)


def test_bad_duration() -> None:
    with pytest.raises(UsageError, match="--wait must be a duration such as 2.5, 250ms or 1m, but got '5 years'"):
        parse_duration("5 years", what="--wait")


def test_positive_numbers() -> None:
    assert positive_int("3") == 3
    assert positive_float("0.5") == 0.5
    for bad in ("0", "-2", "x"):
        with pytest.raises(UsageError, match=repr(bad)):
            positive_int(bad)
    for bad in ("0", "nan", "x"):
        with pytest.raises(UsageError, match=repr(bad)):
            positive_float(bad)


def test_format_bytes() -> None:
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(48.2 * 2**20) == "48.2 MiB"


@pytest.mark.parametrize("text", ["inf", "1e400", "-inf", "nan"])
def test_non_finite_values_are_refused(text: str) -> None:
    with pytest.raises(UsageError, match=repr(text)):
        positive_float(text, what="--scale")
    with pytest.raises(UsageError, match="--wait must be"):
        parse_duration(text, what="--wait")


def test_outputs_that_cannot_be_written_are_refused_up_front(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError, match=r"--out must be a file that can be created, but got .*x.html"):
        writable_path(str(blocker / "x.html"), what="--out")
    with pytest.raises(UsageError, match="--run-dir must be a writable folder"):
        writable_path(str(blocker), what="--run-dir", folder=True)
    with pytest.raises(UsageError, match="--log-dir"):
        check_writable(argparse.Namespace(log_dir=str(blocker / "logs")), {"log_dir": ("--log-dir", True)})
    assert writable_path(str(tmp_path / "new" / "deeper" / "r.html"), what="--out")
    check_writable(argparse.Namespace(log_dir=None), {"log_dir": ("--log-dir", True)})  # unset: nothing to check


def test_shares_and_probabilities() -> None:
    from harness.units import probability, share

    assert share("50%") == 0.5
    assert share("0.25") == 0.25
    assert probability("0.05") == 0.05
    for bad in ("half", "-1", "inf"):
        with pytest.raises(UsageError, match=repr(bad)):
            share(bad, what="--min-change")
    for bad in ("0", "1", "x"):
        with pytest.raises(UsageError, match="between 0 and 1"):
            probability(bad)
