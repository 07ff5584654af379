"""Parsing of sizes, durations and rates given on command lines and in config files.

Values are parsed once, at the edge (argparse ``type=`` or config loading), and rejected there with a message
that names the value and the expected form; the rest of the code works in bytes and seconds.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from harness.errors import UsageError

__all__ = [
    "format_bytes",
    "parse_duration",
    "parse_size",
    "positive_float",
    "positive_int",
    "probability",
    "share",
    "argparse_type",
    "check_writable",
    "writable_path",
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
    value = float(match.group(1)) * _SIZE_UNITS[unit]
    if not math.isfinite(value) or value >= 2**63:
        raise UsageError(f"{what} must be a byte count below 2**63, but got {text!r}")
    return int(value)


def parse_duration(text: str, *, what: str = "duration") -> float:
    """``"250ms"`` -> 0.25. Plain numbers are seconds."""
    match = _NUMBER_UNIT.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _DURATION_UNITS:
        raise UsageError(f"{what} must be a duration such as 2.5, 250ms or 1m, but got {text!r}")
    value = float(match.group(1)) * _DURATION_UNITS[unit]
    if not math.isfinite(value):
        raise UsageError(f"{what} must be a finite duration, but got {text!r}")
    return value


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
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and math.isfinite(value)):
        raise UsageError(f"{what} must be a finite number > 0, but got {text!r}")
    return value


def share(text: str, *, what: str = "share") -> float:
    """``"50%"`` or ``"0.5"`` -> 0.5 (a finite share >= 0)."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        value = float("nan")
    if not (value >= 0 and math.isfinite(value)):
        raise UsageError(f"{what} must be a share >= 0 such as 50% or 0.5, but got {text!r}")
    return value


def probability(text: str, *, what: str = "probability") -> float:
    """A number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1:
        raise UsageError(f"{what} must be a number between 0 and 1 such as 0.05, but got {text!r}")
    return value


def writable_path(text: str, *, what: str = "path", folder: bool = False) -> str:
    """``text`` if the harness can create or write it there (a file, or with ``folder`` a folder); checked
    before a run starts, so an unwritable output is refused up front rather than after the run."""
    path = Path(text).expanduser()
    kind = "folder" if folder else "file"
    if not text.strip():
        raise UsageError(f"{what} must name a {kind}, but got {text!r}")
    if path.exists():
        usable = path.is_dir() if folder else path.is_file()
        if not usable or not os.access(path, os.W_OK | (os.X_OK if folder else 0)):
            raise UsageError(f"{what} must be a writable {kind}, but {text!r} is not")
        return text
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise UsageError(
            f"{what} must be a {kind} that can be created, but got {text!r} ({str(ancestor)!r} is no writable folder)"
        )
    return text


def check_writable(options: Any, flags: Mapping[str, tuple[str, bool]]) -> None:
    """``writable_path`` on each ``dest: (flag, folder)`` of ``options`` that is set."""
    for dest, (flag, folder) in flags.items():
        value = getattr(options, dest, None)
        if value:
            writable_path(str(value), what=flag, folder=folder)


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
