"""Where every check turns warn or fail: the one place the defaults live.

``harness gate`` reads ``[tool.harness.gate]`` and its flags into a ``Limits`` (harness/gate/config.py); the
report, the terminal and summary.json use the defaults below unless given other limits. Sizes are bytes,
durations milliseconds or seconds as named, shares fractions.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

from harness.units import format_bytes

__all__ = [
    "DEFAULT_TOLERANCES",
    "METRIC_UNITS",
    "Limits",
    "Tolerance",
    "format_amount",
]

_MIB = float(1 << 20)
_KIB = float(1 << 10)

METRIC_UNITS = {
    "backlog_bytes": "size",
    "retained_per_1000_requests_bytes": "size",
    "retained_growth_bytes": "size",
    "growth_bytes": "size",
    "held_per_slow_client_bytes": "size",
    "orphans_at_end": "count",
    "orphan_stream_seconds": "duration",
    "excess_peak_streams": "count",
    "cancel_latency_p99_ms": "duration_ms",
    "tokens_after_leave_share": "share",
    "kept_per_1000_connections": "count",
    "stalled_hold_s": "duration",
    "ttft_p95_ms": "duration_ms",
}
"""The headline figures (summary.json ``targets.<name>.headline``) a baseline can be compared on, and their kind."""


def format_amount(metric: str, value: float) -> str:
    """A figure of ``metric`` for a sentence: '4.0 MiB', '120 ms', '3', '2.5%'."""
    kind = METRIC_UNITS.get(metric, "count")
    if kind == "size":
        return format_bytes(value) + ("/s" if metric.endswith("_per_s") else "")
    if kind == "duration_ms":
        return f"{value:.0f} ms"
    if kind == "duration":
        return f"{value:.1f} s"
    if kind == "share":
        return f"{value:.1%}"
    return f"{value:g}"


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How much a figure may rise over its baseline value: the larger of a share of it and a fixed amount."""

    metric: str
    share: float = 0.0
    """0.1 = the figure may rise by 10% of its baseline value."""
    amount: float = 0.0
    """In the metric's own unit (bytes, ms, a count, a share)."""

    def allowed(self, baseline: float) -> float:
        return max(self.share * abs(baseline), self.amount)

    def __str__(self) -> str:
        parts = []
        if self.share:
            parts.append(f"{self.share * 100:g}%")
        if self.amount or not parts:
            parts.append(format_amount(self.metric, self.amount))
        return "+".join(parts)


DEFAULT_TOLERANCES = (
    Tolerance("backlog_bytes", 0.25, 4 * _MIB),
    Tolerance("retained_per_1000_requests_bytes", 0.25, 1 * _MIB),
    Tolerance("orphans_at_end", 0.0, 0.0),
    Tolerance("cancel_latency_p99_ms", 0.5, 100.0),
    Tolerance("tokens_after_leave_share", 0.25, 0.02),
    Tolerance("kept_per_1000_connections", 0.0, 5.0),
)
"""Compared with a baseline unless told otherwise; small fixed amounts keep tiny figures' noise from failing."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Every check's limits. ``harness/gate/config.py`` documents the ``[tool.harness.gate]`` key of each."""

    backlog_bytes: float = 16 * _MIB
    """Memory held while slow readers are connected, beyond what the requests explain: fail at or above the larger
    of this and ``backlog_share`` of the baseline."""
    backlog_share: float = 0.25
    """Of the target's baseline memory: the backlog limit is the larger of ``backlog_bytes`` and this share."""
    backlog_warn_bytes: float = 4 * _MIB
    """A backlog at or above this (and under the limit) warns."""
    backlog_rising_bytes: float = 1 * _MIB
    """A backlog still rising at ``backlog_rate`` late in the slow readers' stay fails from this size: it grows for
    as long as they stay (a bounded buffer fills and stops), so its size says more about the scenario's length."""
    backlog_rate_bytes_per_s: float = 64 * _KIB
    """Per slow client: the Theil-Sen slope's 95% lower bound over the second half of their stay that confirms a
    growing backlog. Measured in mixed.py: the eager relay 110 KiB/s per slow client at the least (profiled, scale
    0.3), lazy and bounded 29 KiB/s and more (a correct relay's heap grows too while the load first rises: RSS of
    bounded rose at 64 KiB/s per slow client on a loaded CI machine), hence ``backlog_ahead``."""
    backlog_ahead_bytes: float = 512 * _KIB
    """... and, where the upstream's records pair slow readers' streams exactly, only when the upstream sent one of
    them at least this much more than it read while connected (analyse/run_ahead.py). A bounded buffer keeps that
    at a buffer's size. Measured at the gate's settings (mixed.py, --scenario-scale 0.4, three runs): lazy 32-34
    KiB, bounded 91-93 KiB, eager 1.8-1.9 MiB at the most. Correct aiohttp relays with a ClientSession
    (tests/targets_apps/judged_servers.py) reach 710 KiB (its read buffer and the kernel's): for them RSS decides."""
    per_request_bytes: float = 1 * _MIB
    """Memory retained per 1,000 requests served with no slow reader connected: fail at or above."""
    per_request_min_bytes: float = 4 * _MIB
    """... once the retained growth itself reaches this (below it, RSS noise)."""
    per_request_min_requests: int = 30
    """Fewer requests than this with no slow reader connected: growth per request is not judged."""
    leaked_streams: int = 0
    """Upstream streams allowed open after the drain with their client gone."""
    cancel_p99_ms: float = 2000.0
    """p99 from a client leaving to its upstream stream closing (on the aggregate basis: the longest stretch of
    more upstream streams than clients): fail above."""
    cancel_p99_warn_ms: float = 500.0
    """... warn above."""
    after_leave_share: float = 0.20
    """Share of the produced tokens made more than 0.5 s after their clients left (analyse/cancellation.py
    ``REACTION_S``): fail above."""
    after_leave_warn_share: float = 0.10
    """... warn above. 10%, not 5%: under the tracemalloc probe a correct relay runs 2.5-4x slower and produces a
    token or two more per left stream (measured 6.3% at --scenario-scale 0.3 against 0.2% without the probe, when
    tokens were counted from the leaving itself, before the 0.5 s allowance)."""
    churn_kept_per_1000: float = 100.0
    """Descriptors, threads or tasks kept per 1,000 connections of the churn phase: fail at or above, when the
    count also rose in every round. A leak keeps about 1,000 (one per connection); connections still in flight at
    a round's end read as up to 26 per 1,000 in a 300-connection churn (measured)."""
    churn_rounds: int = 4
    """Rounds the churn phase is cut into; a leak rises in every round after the first."""
    stalled_hold_s: float = 10.0
    """A client that reads nothing, held (with its upstream) longer than this: ``stalled_state``."""
    stalled_state: Literal["warn", "fail"] = "warn"
    """Holding stalled clients is a policy, not always a bug: a warning unless configured to fail."""
    tolerances: tuple[Tolerance, ...] = DEFAULT_TOLERANCES
    """Allowed rise of each headline figure over a baseline (the regression check, with a baseline only)."""

    def check_order(self) -> None:
        """Raise ValueError naming the first pair whose warn limit lies above its fail limit."""
        pairs = (
            ("backlog_warn", self.backlog_warn_bytes, "backlog", self.backlog_bytes),
            ("backlog_rising", self.backlog_rising_bytes, "backlog", self.backlog_bytes),
            ("cancel_p99_warn", self.cancel_p99_warn_ms, "cancel_p99", self.cancel_p99_ms),
            ("after_leave_warn_share", self.after_leave_warn_share, "after_leave_share", self.after_leave_share),
        )
        for low_key, low, high_key, high in pairs:
            if low > high:
                raise ValueError(f"{low_key} ({low:g}) must not be above {high_key} ({high:g})")
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise ValueError(f"{spec.name} must not be negative, but got {value:g}")
        if self.churn_rounds < 2:
            raise ValueError(f"churn_rounds must be at least 2, but got {self.churn_rounds}")
