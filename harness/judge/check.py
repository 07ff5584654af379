"""One check's outcome, the record every face shows: summary.json, the report, the gate and the terminal.

A check holds one deciding figure against one limit. Its ``sentence`` reads that figure against that limit first,
then the figures that support it, and never names the target (each face puts the target and the check's name in
front of it, so a line on its own says which check it is). ``not judged`` says why in the sentence; when the run
should have given the check (``required``), the run cannot be judged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard

from harness.units import format_bytes

__all__ = ["RUN", "STATES", "Check", "Figure", "State", "format_figure"]

State = Literal["pass", "warn", "fail", "not judged"]
STATES: tuple[State, ...] = ("pass", "warn", "fail", "not judged")
RUN = "run"
"""The ``target`` of the checks on the run itself (complete, drained)."""
Figure = float | int | str | None


def format_figure(value: float | None, unit: str) -> str:
    """A figure in its unit, as a phrase writes it: '16.0 MiB', '1.0 MiB per 1,000 requests', '120 ms', '5.0%'."""
    if value is None:
        return "none"
    if unit == "bytes":
        return format_bytes(value)
    if unit == "bytes_per_1000_requests":
        return f"{format_bytes(value)} per 1,000 requests"
    if unit == "per_1000_connections":
        return f"{value:.1f} per 1,000 connections"
    if unit == "ms":
        return f"{value / 1000:.1f} s" if abs(value) >= 1000 else f"{value:.0f} ms"
    if unit == "s":
        return f"{value:.1f} s"
    if unit == "share":
        return f"{value:.1%}"
    if unit == "ratio":
        return f"{value:.2g}x the tolerance"
    return f"{value:g}"


def _is_state(value: object) -> TypeGuard[State]:
    return value in STATES


@dataclass(frozen=True, slots=True)
class Check:
    target: str
    """A target's name, or ``run`` for the checks on the run itself."""
    check: str
    """The check's name, e.g. ``backlog_slow_readers``; stable, used in JUnit and baselines."""
    state: State
    figure: float | None
    """The deciding figure, in ``unit``; None when not judged."""
    limit: float | None
    """The limit that decided the state (the fail limit, or the warn limit for a warning), in ``unit``."""
    unit: str
    """bytes | bytes_per_1000_requests | per_1000_connections | ms | s | share | count | state."""
    sentence: str
    """Figure against limit first, then supporting figures; one sentence, no target name."""
    supporting: Mapping[str, Figure] = field(default_factory=dict)
    """Supporting figures by name (bytes, seconds, counts), as in summary.json."""
    required: bool = False
    """A ``not judged`` check the run should have given: the run cannot be judged (the gate will not pass it)."""

    @property
    def label(self) -> str:
        """``eager backlog_slow_readers``: what a line puts before the sentence."""
        return f"{self.target} {self.check}"

    @property
    def phrase(self) -> str:
        """The deciding figure against its limit, short: 'p99 3.9 s, limit 2.0 s'; 'not judged' without a figure."""
        if self.figure is None:
            return "not judged" if self.state == "not judged" else f"limit {format_figure(self.limit, self.unit)}"
        if self.unit == "state":
            return "yes" if self.figure >= (self.limit or 1.0) else "no"
        return f"{format_figure(self.figure, self.unit)}, limit {format_figure(self.limit, self.unit)}"

    @property
    def blocks_judgement(self) -> bool:
        return self.state == "not judged" and self.required

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "check": self.check,
            "state": self.state,
            "figure": self.figure,
            "limit": self.limit,
            "unit": self.unit,
            "phrase": self.phrase,
            "sentence": self.sentence,
            "supporting": dict(self.supporting),
            "required": self.required,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Check:
        state = data.get("state")
        if not _is_state(state):
            raise ValueError(f"a check's state must be one of {', '.join(STATES)}, but got {state!r}")
        figure, limit = data.get("figure"), data.get("limit")
        return cls(
            target=str(data["target"]),
            check=str(data["check"]),
            state=state,
            figure=None if figure is None else float(figure),
            limit=None if limit is None else float(limit),
            unit=str(data.get("unit") or ""),
            sentence=str(data["sentence"]),
            supporting=dict(data.get("supporting") or {}),
            required=bool(data.get("required", False)),
        )
