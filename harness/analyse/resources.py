"""Per-connection resources under churn: descriptors, threads and asyncio tasks kept per 1,000 connections.

The scenario's churn phase (its name contains "churn": many clients connecting and leaving at a steady rate) is cut
into equal rounds. A resource's level at the end of each round is its lowest reading over the round's second half:
connections still in flight inflate single readings, a kept resource stays in every one. As CPython's refleak
hunter does (``regrtest -R``: a leak shows in each of several runs), a resource leaks only when its level rose in
every round after the first, which is their warm-up. Kept per 1,000 connections = (last level - first level) /
connections started in the rounds after the first × 1,000.

Readings: samples.csv ``num_fds`` and ``num_threads`` (every sampled process tree) and ``asyncio_tasks`` (the probe,
for Python targets under it), stats.csv ``asyncio_tasks`` (servers that report it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.analyse.run_data import PhaseSpan, RunData

__all__ = ["CHURN_PHASE", "ChurnFigures", "ResourceRounds", "churn_figures", "churn_phase"]

CHURN_PHASE = "churn"
_SECOND_HALF = 0.5
_MIN_READINGS = 1


@dataclass(frozen=True, slots=True)
class ResourceRounds:
    resource: str
    """descriptors | threads | asyncio tasks."""
    levels: tuple[float, ...]
    """Lowest reading over the second half of each round."""
    rises: int
    """Rounds after the first in which the level rose."""
    kept: float
    """Last level - first level."""
    kept_per_1000_connections: float | None

    @property
    def rose_every_round(self) -> bool:
        return self.rises == len(self.levels) - 1 and len(self.levels) >= 2


@dataclass(frozen=True, slots=True)
class ChurnFigures:
    phase: str
    start_s: float
    end_s: float
    rounds: int
    connections: int
    """Client streams of the target started in the rounds after the first."""
    resources: tuple[ResourceRounds, ...]


def churn_phase(run: RunData) -> PhaseSpan | None:
    """The run's churn phase, or None."""
    return next((phase for phase in run.phases if CHURN_PHASE in phase.name.lower()), None)


def _series(run: RunData, target: str) -> dict[str, pd.DataFrame]:
    samples = run.samples[run.samples["target"] == target]
    stats = run.stats[(run.stats["target"] == target) & (run.stats["ok"] == 1)]
    found = {}
    for resource, frame, column in (
        ("descriptors", samples, "num_fds"),
        ("threads", samples, "num_threads"),
        ("asyncio tasks", samples, "asyncio_tasks"),
        ("asyncio tasks", stats, "asyncio_tasks"),
    ):
        if column in frame.columns and resource not in found:
            values = frame.dropna(subset=["t", column])
            if len(values):
                found[resource] = values[["t", column]].rename(columns={column: "value"})
    return found


def _levels(frame: pd.DataFrame, bounds: np.ndarray) -> tuple[float, ...] | None:
    levels = []
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        half = frame[(frame["t"] >= end - _SECOND_HALF * (end - start)) & (frame["t"] <= end)]
        if len(half) < _MIN_READINGS:
            return None
        levels.append(float(half["value"].min()))
    return tuple(levels)


def churn_figures(run: RunData, target: str, rounds: int) -> ChurnFigures | None:
    """The churn figures of ``target``; None without a churn phase or without a reading in every round."""
    phase = churn_phase(run)
    if phase is None or phase.end <= phase.start:
        return None
    bounds = np.linspace(phase.start, phase.end, rounds + 1)
    clients = run.clients[run.clients["target"] == target]
    starts = clients["start"].to_numpy(dtype=float)
    connections = int(np.sum((starts >= bounds[1]) & (starts < phase.end)))
    resources = []
    for resource, frame in _series(run, target).items():
        levels = _levels(frame, bounds)
        if levels is None:
            continue
        rises = sum(later > earlier for earlier, later in zip(levels[:-1], levels[1:], strict=True))
        kept = levels[-1] - levels[0]
        per_1000 = kept / connections * 1000.0 if connections else None
        resources.append(ResourceRounds(resource, levels, rises, kept, per_1000))
    if not resources:
        return None
    windows = run.windows
    return ChurnFigures(
        phase=phase.name,
        start_s=windows.relative(phase.start),
        end_s=windows.relative(phase.end),
        rounds=rounds,
        connections=connections,
        resources=tuple(resources),
    )
