"""Figures as the checks' sentences write them: sizes, changes that say which way they went, durations."""

from __future__ import annotations

from harness.units import format_bytes

__all__ = ["SERIES", "change", "plural", "seconds", "size"]

SERIES = {"rss_bytes": "RSS", "traced_bytes": "traced memory"}
"""What a sentence calls each memory series."""


def size(value: float) -> str:
    return format_bytes(value)


def change(value: float, *, up: str = "grew by", down: str = "fell by") -> str:
    """'grew by 1.5 MiB', 'fell by 0.7 MiB', 'did not change': never 'grew -0.7 MiB'."""
    if abs(value) < 1.0:
        return "did not change"
    return f"{up} {format_bytes(value)}" if value > 0 else f"{down} {format_bytes(-value)}"


def seconds(value: float) -> str:
    return f"{value:.1f} s"


def plural(count: int | float, word: str, many: str | None = None) -> str:
    """'1 stream', '3 streams'."""
    number = int(count)
    return f"{number:,} {word if number == 1 else (many or word + 's')}"
