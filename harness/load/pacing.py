"""Read pacing: how long a slow reader waits before its next read, and how much that read may take.

Pure arithmetic on a clock the caller passes in (``now_s``), so it is tested without sleeping. A pace is a
number of bytes or of tokens (SSE events, chunks) per second; a token bucket holds at most one read's worth,
starts full (the first read is not delayed: time to first token stays the server's), and refills at the pace.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from harness.errors import UsageError
from harness.units import parse_size

__all__ = ["Pace", "ReadPlan", "TokenBucket"]

_TOKENS = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(?:tok|tokens?)\s*/\s*s\s*$", re.IGNORECASE)
_BYTES = re.compile(r"^\s*(.+?)\s*/\s*s\s*$")


@dataclass(frozen=True, slots=True)
class Pace:
    """A reading speed: ``rate_per_s`` bytes or tokens per second."""

    rate_per_s: float
    unit: Literal["bytes", "tokens"] = "bytes"

    def __post_init__(self) -> None:
        if not (self.rate_per_s > 0 and math.isfinite(self.rate_per_s)):
            raise UsageError(f"a read pace must be a finite rate > 0, but got {self.rate_per_s!r} {self.unit}/s")

    @classmethod
    def parse(cls, text: str, *, what: str = "read pace") -> Pace:
        """``"2KiB/s"`` -> 2048 bytes/s; ``"5tok/s"`` -> 5 tokens/s."""
        expected = f"{what} must be bytes or tokens per second such as 4KiB/s, 512B/s or 5tok/s, but got {text!r}"
        tokens = _TOKENS.match(text)
        if tokens:
            rate, unit = float(tokens.group(1)), "tokens"
        else:
            per_second = _BYTES.match(text)
            if per_second is None:
                raise UsageError(expected)
            try:
                rate, unit = float(parse_size(per_second.group(1))), "bytes"
            except UsageError:
                raise UsageError(expected) from None
        if not rate > 0:
            raise UsageError(f"{what} must be faster than 0, but got {text!r}")
        return cls(rate, "tokens" if unit == "tokens" else "bytes")

    def __str__(self) -> str:
        return f"{self.rate_per_s:g}tok/s" if self.unit == "tokens" else f"{self.rate_per_s:g}B/s"


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """The next read: wait ``wait_s``, then take at most ``max_units`` (bytes or tokens)."""

    wait_s: float
    max_units: int


class TokenBucket:
    """Units accrue at ``rate_per_s`` up to ``burst`` (the size of one read); each read spends what it took."""

    __slots__ = ("_at_s", "_level", "burst", "rate_per_s")

    def __init__(self, rate_per_s: float, burst: int, now_s: float) -> None:
        if not rate_per_s > 0:
            raise ValueError(f"rate_per_s must be > 0, but got {rate_per_s!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, but got {burst!r}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._level = float(burst)  # starts full: the first read is not held back
        self._at_s = now_s

    @classmethod
    def for_pace(
        cls, pace: Pace, now_s: float, *, read_interval_s: float = 0.25, max_read_bytes: int = 65536
    ) -> TokenBucket:
        """A bucket for ``pace``: bytes are read about every ``read_interval_s`` (in reads of at most
        ``max_read_bytes``, at least 1 byte); tokens one at a time."""
        if pace.unit == "tokens":
            return cls(pace.rate_per_s, 1, now_s)
        burst = min(max_read_bytes, max(1, int(pace.rate_per_s * read_interval_s)))
        return cls(pace.rate_per_s, burst, now_s)

    def level(self, now_s: float) -> float:
        """Units available at ``now_s``."""
        return min(float(self.burst), self._level + max(0.0, now_s - self._at_s) * self.rate_per_s)

    def plan(self, now_s: float) -> ReadPlan:
        """When the next read may happen and how much it may take: a full bucket's worth, once it is full."""
        level = self.level(now_s)
        if level >= self.burst:
            return ReadPlan(0.0, self.burst)
        return ReadPlan((self.burst - level) / self.rate_per_s, self.burst)

    def spend(self, units: int, now_s: float) -> None:
        """Record that a read at ``now_s`` took ``units``."""
        self._level = self.level(now_s) - units
        self._at_s = now_s
