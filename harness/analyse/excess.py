"""The excess of a target's open upstream streams over its connected clients, across the whole run.

A server that cancels its upstream when its client leaves never has more upstream streams open than clients
connected, whatever the ids or the timing; every moment it has more is upstream work for nobody. The excess is
judged on every basis (it needs no pairing at all), so a server that forwards nothing is judged on the same
evidence as one that forwards everything:

    peak                 the most upstream streams open beyond the connected clients at any moment
    seconds_above_zero   for how long there was any excess
    longest_s            the longest stretch without a moment of no excess
    stream_seconds       the excess integrated over time: orphan stream-seconds

The upstream's open streams come from its own books: its per-stream records (exact open and close times) or, when
there are none, the ``open_streams`` it reported in stats.csv (a step between polls). Connected clients come from
clients.csv (request sent to stream end). The kernel's ESTABLISHED count is never used here: a keep-alive pool holds
connections that carry no stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.analyse.memory import open_at
from harness.analyse.run_data import RunData

__all__ = ["Excess", "ExcessFigures", "excess_series"]


@dataclass(frozen=True, slots=True)
class ExcessFigures:
    peak: int
    seconds_above_zero: float
    longest_s: float
    stream_seconds: float
    """Orphan stream-seconds: the excess integrated over the window."""
    at_end: int
    """The excess at the window's end."""


@dataclass(frozen=True, slots=True)
class Excess:
    """A step function: ``upstream[i]`` streams and ``clients[i]`` clients open from ``t[i]`` to ``t[i + 1]``."""

    t: np.ndarray
    upstream: np.ndarray
    clients: np.ndarray
    source: str
    """"records" (the upstream's per-stream records) or "stats" (its open_streams polled into stats.csv)."""

    @property
    def excess(self) -> np.ndarray:
        difference: np.ndarray = np.clip(self.upstream - self.clients, 0, None)
        return difference

    def figures(self, start: float, end: float) -> ExcessFigures:
        """The figures over [start, end]."""
        if not end > start or len(self.t) == 0:
            return ExcessFigures(0, 0.0, 0.0, 0.0, 0)
        edges = np.unique(np.concatenate([[start, end], self.t[(self.t > start) & (self.t < end)]]))
        level = self.excess[np.clip(np.searchsorted(self.t, edges[:-1], side="right") - 1, 0, None)]
        level = np.where(edges[:-1] < self.t[0], 0, level)
        widths = np.diff(edges)
        above = level > 0
        longest = current = 0.0
        for width, on in zip(widths, above, strict=True):
            current = current + width if on else 0.0
            longest = max(longest, current)
        at_end = self.excess[max(int(np.searchsorted(self.t, end, side="right")) - 1, 0)] if end >= self.t[0] else 0
        return ExcessFigures(
            peak=int(level.max()) if len(level) else 0,
            seconds_above_zero=float(widths[above].sum()),
            longest_s=float(longest),
            stream_seconds=float((level * widths).sum()),
            at_end=int(at_end),
        )


def excess_series(run: RunData, target: str, upstream: pd.DataFrame) -> Excess | None:
    """The target's excess over the run: from ``upstream`` (its own upstream's records) when there are any, else
    from its upstream's stats rows; None when the target has neither (no upstream of the harness's)."""
    clients = run.clients[run.clients["target"] == target]
    client_start = clients["start"].to_numpy(dtype=float)
    client_end = clients["end"].to_numpy(dtype=float)
    if len(upstream):
        up_start = upstream["start"].to_numpy(dtype=float)
        up_end = upstream["end"].to_numpy(dtype=float)
        t = np.unique(np.concatenate([up_start, up_end, client_start, client_end]))
        t = t[~np.isnan(t)]
        return Excess(t, open_at(up_start, up_end, t), open_at(client_start, client_end, t), "records")
    stats = run.stats
    if "upstream_of" not in stats:
        return None
    rows = stats[(stats["upstream_of"] == target) & (stats["ok"] == 1)].dropna(subset=["open_streams"])
    if rows.empty:
        return None
    polled = rows["t"].to_numpy(dtype=float)
    order = np.argsort(polled)
    polled, counts = polled[order], rows["open_streams"].to_numpy(dtype=float)[order]
    t = np.unique(np.concatenate([polled, client_start, client_end]))
    t = t[~np.isnan(t) & (t >= polled[0])]
    upstream_at = counts[np.searchsorted(polled, t, side="right") - 1].astype(int)
    return Excess(t, upstream_at, open_at(client_start, client_end, t), "stats")
