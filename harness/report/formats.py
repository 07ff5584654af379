"""How the pages write figures: sizes, milliseconds, shares, counts, seconds; "—" for a missing one."""

from __future__ import annotations

import time
from typing import Any

__all__ = ["count", "ms", "rate", "seconds", "share", "size", "when"]


def size(value: Any) -> str:
    """Bytes as B / KiB / MiB / GiB, signed when negative; "—" when missing."""
    if value is None:
        return "—"
    number = float(value)
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(number) >= scale:
            return f"{number / scale:.1f} {unit}"
    return f"{number:.0f} B"


def ms(value: Any) -> str:
    return "—" if value is None else f"{float(value):,.1f} ms"


def share(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1%}"


def count(value: Any) -> str:
    return "—" if value is None else f"{float(value):,.0f}"


def seconds(value: Any) -> str:
    return "—" if value is None else f"{float(value):,.1f} s"


def rate(value: Any) -> str:
    return "—" if value is None else f"{size(value)}/s"


def when(epoch: Any) -> str:
    if epoch is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(float(epoch)))
