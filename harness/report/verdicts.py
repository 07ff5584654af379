"""The checks as the report shows them: per target and check, the state, the deciding figure against its limit in
one phrase, the sentence, the supporting figures; and the headline figures, only those a check judged.

Nothing here judges. The checks come from summary.json as the judge wrote them (``checks``: contract 5); a summary
written before the judge existed carries ``targets.<name>.verdicts`` ({state, reason}), shown as they are, with the
figures the analysis named as judged (traced memory for profiled targets).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.report.formats import count, ms, rate, seconds, share, size

__all__ = ["RUN", "CheckView", "GlanceRow", "HeadlineRow", "checks_of", "glance", "headline_rows", "state_class"]

RUN = "run"
"""The target of the checks on the run itself (complete, drained, a target died)."""

_STATES = {"pass": "pass", "warn": "warn", "fail": "fail", "n/a": "not judged", "not judged": "not judged"}


def state_class(state: str) -> str:
    """The CSS class (and colour) of a state."""
    return {"pass": "pass", "warn": "warn", "fail": "fail"}.get(state, "na")


@dataclass(frozen=True, slots=True)
class CheckView:
    target: str
    check: str
    """The check's key (``cancellation``); ``label`` is how the page names it."""
    label: str
    state: str
    """pass | warn | fail | not judged"""
    phrase: str
    """The deciding figure against its limit ("p99 3.9 s, limit 2 s"); empty when the summary gives none."""
    sentence: str
    supporting: tuple[str, ...] = field(default_factory=tuple)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return str(value.get("text") or value.get("sentence") or "")
    return str(value)


def _from_check(entry: dict[str, Any]) -> CheckView:
    supporting = entry.get("supporting") or ()
    if isinstance(supporting, dict):
        supporting = [f"{key.replace('_', ' ')} {value}" for key, value in supporting.items()]
    name = str(entry.get("check") or entry.get("name") or "")
    return CheckView(
        target=str(entry.get("target") or ""),
        check=name,
        label=name.replace("_", " "),
        state=_STATES.get(str(entry.get("state")), str(entry.get("state"))),
        phrase=_text(entry.get("phrase")),  # the judge's formatting of figure and limit; never rebuilt here
        sentence=_text(entry.get("sentence")),
        supporting=tuple(_text(item) for item in supporting),
    )


_LEGACY = (("back_pressure", "back-pressure"), ("cancellation", "cancellation"))


def checks_of(summary: dict[str, Any]) -> list[CheckView]:
    """Every check of the run, per target in the summary's order, as the judge stated it."""
    checks = summary.get("checks")
    if isinstance(checks, list):
        return [_from_check(entry) for entry in checks if isinstance(entry, dict)]
    if isinstance(checks, dict):  # target -> list of checks
        return [_from_check({"target": t, **entry}) for t, entries in checks.items() for entry in entries]
    views = []
    for name, target in summary.get("targets", {}).items():
        if target.get("role") == "upstream":
            continue
        for key, label in _LEGACY:
            verdict = (target.get("verdicts") or {}).get(key)
            if verdict:
                state = _STATES.get(str(verdict.get("state")), str(verdict.get("state")))
                views.append(CheckView(name, key, label, state, "", str(verdict.get("reason") or "")))
    return views


@dataclass(frozen=True, slots=True)
class HeadlineRow:
    label: str
    """What the figure is, naming the judged series ("growth after warm-up (traced memory)")."""
    values: list[str]


_Format = Callable[[Any], str]
_MEMORY: tuple[tuple[str, str, _Format], ...] = (
    ("growth_bytes", "growth after warm-up", size),
    ("slope_low_bytes_per_s", "growth rate, lower 95% bound", rate),
    ("retained_growth_bytes", "retained after the drain", size),
)
_CANCELLATION: tuple[tuple[str, str, str, _Format], ...] = (
    ("upstream", "orphans_at_end", "orphan upstream streams after the drain", count),
    ("upstream", "orphan_stream_seconds", "orphan stream-seconds", seconds),
    ("cancellation", "never_closed", "left streams never closed upstream", count),
    ("cancellation", "latency_p99_ms", "cancellation latency p99", ms),
    ("cancellation", "tokens_after_leave_share", "tokens produced after clients left", share),
)


def _judged_memory_series(target: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    traced = target.get("traced_memory") or {}
    if traced.get("available"):
        return "traced memory", {key.replace("_traced_", "_rss_"): value for key, value in traced.items()}
    return "RSS", target.get("memory") or {}


def headline_rows(summary: dict[str, Any], names: Sequence[str], checks: Sequence[CheckView]) -> list[HeadlineRow]:
    """Figures a check judged, one row each; a target whose check did not judge them shows "—"."""
    judged = {(c.target, c.check) for c in checks if c.state != "not judged"}
    targets = summary["targets"]
    rows: list[HeadlineRow] = []
    series = {name: _judged_memory_series(targets[name]) for name in names}
    memory_judged = [
        name for name in names if any(t == name and (k == "back_pressure" or "memory" in k) for t, k in judged)
    ]
    for key, label, fmt in _MEMORY:
        kinds = sorted({series[name][0] for name in memory_judged})
        if not memory_judged:
            break
        values = [fmt(series[name][1].get(key)) if name in memory_judged else "—" for name in names]
        rows.append(HeadlineRow(f"{label} ({' / '.join(kinds)})", values))
    cancel_judged = [name for name in names if (name, "cancellation") in judged]
    for section, key, label, fmt in _CANCELLATION:
        if not cancel_judged:
            break
        values = [fmt((targets[name].get(section) or {}).get(key)) if name in cancel_judged else "—" for name in names]
        if any(value != "—" for value in values):
            rows.append(HeadlineRow(label, values))
    return rows


@dataclass(frozen=True, slots=True)
class GlanceRow:
    label: str
    check: str
    cells: list[CheckView | None]
    """One per target of the glance's columns; None when the check does not apply to that target."""


def glance(checks: Sequence[CheckView]) -> tuple[list[str], list[GlanceRow]]:
    """The verdicts at a glance: target columns (the checks' order) and one row per check of the targets."""
    per_target = [c for c in checks if c.target != RUN]
    targets = list(dict.fromkeys(c.target for c in per_target))
    names = list(dict.fromkeys(c.check for c in per_target))
    found = {(c.target, c.check): c for c in per_target}
    rows = [
        GlanceRow(
            next(c.label for c in per_target if c.check == name),
            name,
            [found.get((target, name)) for target in targets],
        )
        for name in names
    ]
    return targets, rows
