"""Colours: one per target, the same in every chart of the report, the comparison and the live view; one per state.

A target's colour follows its place among the run's targets (meta.json's order): servers under test take the
palette in turn, upstreams take greys, so "eager" is the same blue on every chart of a page. The palette leaves
out pure red, green and amber, which belong to the states (pass, warn, fail).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["STATE_COLORS", "TARGET_PALETTE", "UPSTREAM_GREYS", "target_colors"]

TARGET_PALETTE = ("#1f77b4", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#393b79", "#637939", "#7b4173")
UPSTREAM_GREYS = ("#7f7f7f", "#a5a5a5", "#525252", "#c7c7c7")
STATE_COLORS = {"pass": "#2ca02c", "warn": "#e6a100", "fail": "#d62728", "not judged": "#9e9e9e"}
"""The colour of each check state, in the page's verdict badges and in the comparison's marks."""


def target_colors(targets: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``(name, role)`` pairs in the run's order -> name -> colour; upstreams grey, the others the palette in turn."""
    colors: dict[str, str] = {}
    served = upstreams = 0
    for name, role in targets:
        if name in colors:
            continue
        if role == "upstream":
            colors[name] = UPSTREAM_GREYS[upstreams % len(UPSTREAM_GREYS)]
            upstreams += 1
        else:
            colors[name] = TARGET_PALETTE[served % len(TARGET_PALETTE)]
            served += 1
    return colors
