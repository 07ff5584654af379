"""Parsing of sizes, durations and rates given on command lines and in config files.

Values are parsed once, at the edge (argparse ``type=`` or config loading), and rejected there with a message
that names the value and the expected form; the rest of the code works in bytes and seconds.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

from harness.errors import UsageError

__all__ = [
    "format_bytes",
    "parse_duration",
    "parse_size",
    "positive_float",
    "positive_int",
    "argparse_type",
]

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
}
_DURATION_UNITS = {"": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "m": 60.0, "min": 60.0, "h": 3600.0}
_NUMBER_UNIT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str, *, what: str = "size") -> int:
    """``"64KiB"`` -> 65536. Plain numbers are bytes; k/M/G are decimal, KiB/MiB/GiB binary."""
    match = _NUMBER_UNIT.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _SIZE_UNITS:
        raise UsageError(f"{what} must be a byte count such as 4096, 64KiB or 2MB, but got {text!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def parse_duration(text: str, *, what: str = "duration") -> float:
    """``"250ms"`` -> 0.25. Plain numbers are seconds."""
    match = _NUMBER_UNIT.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _DURATION_UNITS:
        raise UsageError(f"{what} must be a duration such as 2.5, 250ms or 1m, but got {text!r}")
    return float(match.group(1)) * _DURATION_UNITS[unit]


def positive_int(text: str, *, what: str = "value") -> int:
    """A whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"{what} must be a whole number >= 1, but got {text!r}")
    return value


def positive_float(text: str, *, what: str = "value") -> float:
    """A number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise UsageError(f"{what} must be a number > 0, but got {text!r}")
    return value


def argparse_type(parse: Callable[..., object], what: str) -> Callable[[str], object]:
    """Adapt a parser above for ``argparse``'s ``type=``, so a bad flag is reported by argparse (exit 2)."""

    def convert(text: str) -> object:
        try:
            return parse(text, what=what)
        except UsageError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = what  # argparse names the type in its message
    return convert


def format_bytes(count: float) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
