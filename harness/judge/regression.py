"""The regression check: headline figures against a baseline, each within its tolerance (only with a baseline)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.judge.check import Check
from harness.judge.limits import Tolerance, format_amount

__all__ = ["check_regression"]


def check_regression(
    target: str,
    headline: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
    tolerances: tuple[Tolerance, ...],
) -> Check:
    """Each toleranced headline figure may rise over its baseline value by its tolerance, no more.

    The deciding figure is the largest rise as a multiple of its allowance (above 1 fails).
    """
    name = "regression"
    if baseline is None:
        return Check(
            target, name, "not judged", None, 1.0, "ratio", "not judged: the baseline has no figures for this target"
        )
    rises: list[tuple[float, str]] = []
    compared = 0
    worst = 0.0
    for tolerance in tolerances:
        old, new = baseline.get(tolerance.metric), headline.get(tolerance.metric)
        if old is None or new is None:
            continue
        compared += 1
        allowed = tolerance.allowed(float(old))
        rise = float(new) - float(old)
        ratio = rise / allowed if allowed else (float("inf") if rise > 0 else 0.0)
        worst = max(worst, ratio)
        if rise > allowed:
            metric = tolerance.metric
            rises.append(
                (
                    ratio,
                    f"{metric} rose from {format_amount(metric, float(old))} to {format_amount(metric, float(new))} "
                    f"(+{format_amount(metric, rise)}; tolerance {tolerance} = {format_amount(metric, allowed)})",
                )
            )
    if not compared:
        return Check(
            target, name, "not judged", None, 1.0, "ratio", "not judged: no figure is in both this run and the baseline"
        )
    if rises:
        rises.sort(key=lambda item: -item[0])
        figure = min(worst, 1e9)
        return Check(target, name, "fail", figure, 1.0, "ratio", "; ".join(text for _, text in rises))
    sentence = f"none of {compared} figures rose beyond its tolerance over the baseline"
    return Check(target, name, "pass", worst, 1.0, "ratio", sentence)
