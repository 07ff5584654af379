"""The gate's value parsers, one per kind, each refusing a bad value in one line that names the key (or flag).

Sizes and durations must carry a unit (``16MiB``, ``500ms``): a bare number is ambiguous, so it is refused.
Shares are fractions (``0.2``) or percentages (``"20%"``). Negative values are refused everywhere.
"""

from __future__ import annotations

import re

from harness.errors import UsageError
from harness.judge.limits import METRIC_UNITS, Tolerance
from harness.units import parse_duration, parse_size

__all__ = [
    "count_value",
    "duration_ms_value",
    "duration_s_value",
    "number_value",
    "parse_tolerance",
    "share_value",
    "size_value",
    "state_value",
    "tolerance_value",
]

_HAS_UNIT = re.compile(r"[a-zA-Z]\s*$")


def _text(value: object, what: str, example: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str):
        raise UsageError(f"{what} must be a string with a unit such as {example!r}, but got {value!r}")
    if value.strip().startswith("-"):
        raise UsageError(f"{what} must not be negative, but got {value!r}")
    return value


def size_value(value: object, what: str) -> float:
    """'16MiB' -> 16777216; a bare number, a negative one or an unknown unit is refused."""
    text = _text(value, what, "16MiB")
    if text.strip().lower().endswith("/s"):
        text = text.strip()[:-2]
    if not _HAS_UNIT.search(text):
        raise UsageError(f"{what} must be a size with a unit such as 16MiB or 512KiB, but got {value!r}")
    return float(parse_size(text, what=what))


def duration_ms_value(value: object, what: str) -> float:
    """'500ms' -> 500.0 (milliseconds); a bare number is refused."""
    text = _text(value, what, "500ms")
    if not _HAS_UNIT.search(text):
        raise UsageError(f"{what} must be a duration with a unit such as 500ms or 2s, but got {value!r}")
    return parse_duration(text, what=what) * 1000.0


def duration_s_value(value: object, what: str) -> float:
    """'10s' -> 10.0 (seconds)."""
    return duration_ms_value(value, what) / 1000.0


def share_value(value: object, what: str) -> float:
    """0.2 or '20%' -> 0.2; must lie in [0, 1]."""
    share: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        share = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            share = None
    if share is None or not 0.0 <= share <= 1.0:
        raise UsageError(f"{what} must be a share between 0 and 1 or a percentage such as '20%', but got {value!r}")
    return share


def count_value(value: object, what: str) -> int:
    """A whole number >= 0 (an int in TOML, digits on the command line)."""
    count: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        count = value
    elif isinstance(value, str) and value.strip().isdigit():
        count = int(value.strip())
    if count is None or count < 0:
        raise UsageError(f"{what} must be a whole number >= 0, but got {value!r}")
    return count


def number_value(value: object, what: str) -> float:
    """A number >= 0 (an int or float in TOML, a decimal on the command line)."""
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not number >= 0:
        raise UsageError(f"{what} must be a number >= 0 such as 10, but got {value!r}")
    return number


def state_value(value: object, what: str) -> str:
    """'warn' or 'fail'."""
    if value not in ("warn", "fail"):
        raise UsageError(f"{what} must be 'warn' or 'fail', but got {value!r}")
    return str(value)


def _amount(metric: str, text: str, what: str) -> float:
    kind = METRIC_UNITS[metric]
    if kind == "size":
        return size_value(text, what)
    if kind == "duration_ms":
        return duration_ms_value(text, what)
    if kind == "duration":
        return duration_s_value(text, what)
    if kind == "share":
        return share_value(text, what)
    return number_value(text, what)


def _number(text: str, what: str, shown: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise UsageError(f"{what} must give a percentage >= 0 such as 10%, but got {shown}")
    return value


def tolerance_value(metric: str, limit: str, what: str, shown: str) -> Tolerance:
    """``metric`` may rise by ``limit`` ('10%', '4MiB', '10%+4MiB') over its baseline value."""
    if metric not in METRIC_UNITS:
        raise UsageError(
            f"{what} names an unknown figure in {shown}: expected one of {', '.join(sorted(METRIC_UNITS))}"
        )
    if not limit:
        raise UsageError(f"{what} must read METRIC:LIMIT such as backlog_bytes:10%, but got {shown}")
    share = amount = 0.0
    for part in limit.split("+"):
        part = part.strip()
        if part.endswith("%"):
            share = _number(part[:-1], what, shown) / 100
        else:
            amount = _amount(metric, part, f"{what} {metric}")
    return Tolerance(metric, share, amount)


def parse_tolerance(text: str, *, what: str = "--tolerance") -> Tolerance:
    """``backlog_bytes:10%``, ``cancel_latency_p99_ms:100ms``, ``backlog_bytes:10%+4MiB``."""
    metric, colon, limit = text.partition(":")
    return tolerance_value(metric.strip(), limit.strip() if colon else "", what, repr(text))
