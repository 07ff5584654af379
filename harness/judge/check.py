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

__all__ = ["RUN", "STATES", "Check", "Figure", "State"]

State = Literal["pass", "warn", "fail", "not judged"]
STATES: tuple[State, ...] = ("pass", "warn", "fail", "not judged")
RUN = "run"
"""The ``target`` of the checks on the run itself (complete, drained)."""
Figure = float | int | str | None


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
