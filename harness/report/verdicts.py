"""The checks as the report and the comparison show them: per target and check, the state, the deciding figure
against its limit in one phrase, the sentence, the supporting figures; and the glance (a check x target matrix).

Nothing here judges or formats a check's figures: the checks are harness.judge's, read from summary.json with
``Check.from_dict``; the phrase is the judge's own (``phrase`` when summary.json carries it, else the first clause
of the sentence, which states the deciding figure against its limit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.judge.check import RUN, Check

__all__ = ["RUN", "CheckView", "Glance", "GlanceRow", "checks_of", "glance", "state_class"]


def state_class(state: str) -> str:
    """The CSS class (and colour) of a state."""
    return {"pass": "pass", "warn": "warn", "fail": "fail"}.get(state, "na")


@dataclass(frozen=True, slots=True)
class CheckView:
    target: str
    check: str
    """The check's key (``cancel_latency``); ``label`` is how the page names it."""
    label: str
    state: str
    """pass | warn | fail | not judged"""
    phrase: str
    """The deciding figure against its limit ("p99 3900 ms from a client leaving to its upstream closing (limit
    2000 ms)"), as the judge wrote it."""
    sentence: str
    supporting: tuple[str, ...] = field(default_factory=tuple)
    required: bool = False
    unit: str = ""
    """The deciding figure's unit; ``state`` for yes/no checks (alive, complete)."""


def _view(entry: dict[str, Any]) -> CheckView:
    check = Check.from_dict(entry)
    phrase = str(entry.get("phrase") or check.sentence.split("; ")[0])
    return CheckView(
        target=check.target,
        check=check.check,
        label=check.check.replace("_", " "),
        state=check.state,
        phrase=phrase,
        sentence=check.sentence,
        supporting=tuple(f"{key.replace('_', ' ')}: {value}" for key, value in check.supporting.items()),
        required=check.required,
        unit=check.unit,
    )


def checks_of(summary: dict[str, Any]) -> list[CheckView]:
    """Every check of the run, in the judge's order."""
    return [_view(entry) for entry in summary.get("checks") or [] if isinstance(entry, dict)]


@dataclass(frozen=True, slots=True)
class GlanceRow:
    label: str
    check: str
    cells: list[CheckView | None]
    """One per target of the glance's columns; None when the check does not apply to that target."""


@dataclass(frozen=True, slots=True)
class Glance:
    """The verdicts at a glance: one row per check judged for some target (failures first), a column per target
    with a judged figure; the rest in one line each."""

    targets: list[str]
    rows: list[GlanceRow]
    not_judged: list[GlanceRow]
    """Checks not judged for any target (their sentences say why)."""
    yes_no: list[CheckView]
    """Yes/no checks of targets without a judged figure (an upstream's 'alive')."""


_ORDER = {"fail": 0, "warn": 1, "pass": 2, "not judged": 3}


def glance(checks: Sequence[CheckView]) -> Glance:
    per_target = [c for c in checks if c.target != RUN]
    measured = {c.target for c in per_target if c.unit != "state"}
    targets = list(dict.fromkeys(c.target for c in per_target if c.target in measured))
    found = {(c.target, c.check): c for c in per_target}
    rows = [
        GlanceRow(
            next(c.label for c in per_target if c.check == name),
            name,
            [found.get((target, name)) for target in targets],
        )
        for name in dict.fromkeys(c.check for c in per_target if c.target in measured)
    ]
    judged = [row for row in rows if any(c and c.state != "not judged" for c in row.cells)]
    judged.sort(key=lambda row: min(_ORDER.get(c.state, 3) for c in row.cells if c))  # stable: judge's order within
    return Glance(
        targets,
        judged,
        [row for row in rows if row not in judged],
        [c for c in per_target if c.target not in measured],
    )
