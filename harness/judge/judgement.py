"""Every check of an analysed run, once: the list summary.json stores and the report, gate and terminal show.

``judge_summary(summary, limits)`` reads the figures of summary.json (``harness.analyse.analysis``) and returns
the checks: the run's own first, then each target's in the order of the run's targets. ``judgement(checks)``
folds them into the run's state: ``not judgeable`` when a required check could not be computed (the run was
interrupted or killed, had no drain, a target delivered no token, a figure it should have is missing), else
the worst state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from harness.analyse.analysis import STALLED_WINDOW_S
from harness.judge.cancellation import cancellation_checks
from harness.judge.check import Check
from harness.judge.limits import Limits
from harness.judge.memory import check_backlog, check_per_request
from harness.judge.resources import check_churn, check_stalled
from harness.judge.run_state import check_alive, check_run, check_tokens

__all__ = ["judge_summary", "judgement", "target_checks"]


def _silenced(checks: Iterable[Check], why: str) -> list[Check]:
    """A target that delivered no token: every figure-based check is not judged, for that reason."""
    return [
        Check(check.target, check.check, "not judged", None, None, check.unit, f"not judged: {why}") for check in checks
    ]


def target_checks(name: str, figures: Mapping[str, Any], limits: Limits) -> list[Check]:
    """The checks of one target (``figures``: its summary.json section)."""
    role = str(figures.get("role") or "unknown")
    checks = [check_alive(name, figures)]
    if role == "upstream":
        return checks
    tokens = check_tokens(name, figures)
    checks.append(tokens)
    judged = [check_backlog(name, figures, limits), check_per_request(name, figures, limits)]
    if role != "server":
        judged += cancellation_checks(name, figures, limits)
    judged += [check_churn(name, figures, limits), check_stalled(name, figures, limits, STALLED_WINDOW_S)]
    if tokens.state == "not judged":
        judged = _silenced(judged, "no client received a token from this target")
    return checks + judged


def judge_summary(summary: Mapping[str, Any], limits: Limits | None = None) -> list[Check]:
    """Every check of the run whose figures are ``summary`` (summary.json's dict, with or without checks)."""
    limits = limits or Limits()
    checks = [check_run(summary.get("run") or {})]
    for name, figures in (summary.get("targets") or {}).items():
        checks += target_checks(str(name), figures, limits)
    return checks


_ORDER = {"pass": 0, "not judged": 0, "warn": 1, "fail": 2}


def judgement(checks: Sequence[Check]) -> dict[str, Any]:
    """``{"state": pass|warn|fail|not judgeable, "reasons": [...]}``: reasons are the blocking checks' lines."""
    blocking = [f"{check.label}: {check.sentence}" for check in checks if check.blocks_judgement]
    if blocking:
        return {"state": "not judgeable", "reasons": blocking}
    worst = max((check.state for check in checks), key=lambda state: _ORDER[state], default="pass")
    return {"state": "pass" if worst == "not judged" else worst, "reasons": []}
