"""Cancellation per stream: from the client leaving to the upstream stream closing, and the tokens made for nobody.

Only client streams that ended by leaving (``outcome`` = ``left``) and were paired with an upstream record count,
on whatever basis paired them (by stream id or by time order: harness.analyse.attribution); on the ``aggregate``
basis there are no pairs and only the excess figures (harness.analyse.excess) judge cancellation.
Latency is ``upstream end - client end``; an upstream stream that had already ended when the client left counts
as 0 (``upstream_ended_first``), one with no end in the records as ``never_closed``.

Tokens: the upstream records only how many tokens each stream sent, not when each was sent, so

- ``undelivered_tokens`` = tokens sent upstream minus tokens the client read (exact: work nobody read, including
  tokens in flight in buffers when the client left);
- ``tokens_after_leave`` estimates the part produced later than ``REACTION_S`` after the client left, as the
  stream's tokens times the share of its production time (first token to end) that lies beyond the client's end
  plus ``REACTION_S``, capped by the undelivered tokens. A stream cancelled within the reaction time scores zero
  however busy the machine; one produced to its end for nobody scores nearly all its remaining tokens. (Without the
  allowance, the few tokens a correct relay makes while it notices the client is gone were a large share of short
  leaving streams on a loaded machine: 20 ms at 50 tokens/s is 15% of a 5-token stream; correct relays scored up
  to 12%, and 28% with three runs sharing two cores. How fast a relay reacts is cancel_latency's to judge.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.analyse.excess import Excess, ExcessFigures
from harness.analyse.run_data import PhaseSpan

__all__ = [
    "REACTION_S",
    "CancellationFigures",
    "PhaseCancellation",
    "cancellation_figures",
    "per_phase",
    "per_stream_cancellation",
]

REACTION_S = 0.5
"""Tokens produced within this long after a client left are not counted as made for nobody: the time a relay takes
to notice (the cancel_latency check's warn limit, 500 ms by default)."""


@dataclass(frozen=True, slots=True)
class CancellationFigures:
    left_streams: int
    """Matched client streams that ended by the client leaving."""
    closed: int
    never_closed: int
    upstream_ended_first: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    latency_max_ms: float | None
    tokens_produced: int
    """Tokens the upstream sent on all this target's matched streams."""
    tokens_after_leave: float
    """Estimated tokens produced later than REACTION_S after their client left."""
    tokens_after_leave_share: float | None
    """tokens_after_leave / tokens_produced."""
    undelivered_tokens: int
    undelivered_share: float | None
    reaction_s: float = REACTION_S
    """The allowance tokens_after_leave leaves a relay to notice a client left."""


def per_stream_cancellation(matched: pd.DataFrame, run_end: float) -> pd.DataFrame:
    """One row per left stream: stream_id, latency_ms (NaN if never closed), closed, tokens_after_leave..."""
    left = matched[matched["outcome"] == "left"]
    client_end = left["client_end"].to_numpy(dtype=float)
    up_end = left["up_end"].to_numpy(dtype=float)
    up_first = left["up_first_token"].to_numpy(dtype=float)
    sent = left["tokens_sent"].fillna(0).to_numpy(dtype=float)
    read = left["client_tokens"].fillna(0).to_numpy(dtype=float)
    closed = ~np.isnan(up_end)
    latency_ms = np.where(closed, np.clip(up_end - client_end, 0, None) * 1000.0, np.nan)
    producing_until = np.where(closed, up_end, run_end)
    producing_from = np.where(np.isnan(up_first), producing_until, up_first)
    span = producing_until - producing_from
    after = np.clip(producing_until - np.fmax(client_end + REACTION_S, producing_from), 0, None)
    share = np.divide(after, span, out=np.where(after > 0, 1.0, 0.0), where=span > 0)
    undelivered = np.clip(sent - read, 0, None)
    return pd.DataFrame(
        {
            "stream_id": left["stream_id"].to_numpy(),
            "leave_when": left["leave_when"].to_numpy(),
            "client_end": client_end,
            "closed": closed,
            "upstream_ended_first": closed & (up_end <= client_end),
            "latency_ms": latency_ms,
            "tokens_sent": sent,
            "undelivered_tokens": undelivered,
            "tokens_after_leave": np.minimum(sent * share, undelivered),
        }
    )


def _percentile(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def cancellation_figures(matched: pd.DataFrame, run_end: float) -> CancellationFigures:
    """The figures of one target's matched streams (see match_streams)."""
    rows = per_stream_cancellation(matched, run_end)
    latency = rows.loc[rows["closed"], "latency_ms"].to_numpy(dtype=float)
    produced = int(matched["tokens_sent"].fillna(0).sum())
    after = float(rows["tokens_after_leave"].sum())
    undelivered = int(rows["undelivered_tokens"].sum())
    return CancellationFigures(
        left_streams=len(rows),
        closed=int(rows["closed"].sum()),
        never_closed=int((~rows["closed"]).sum()),
        upstream_ended_first=int(rows["upstream_ended_first"].sum()),
        latency_p50_ms=_percentile(latency, 50),
        latency_p95_ms=_percentile(latency, 95),
        latency_p99_ms=_percentile(latency, 99),
        latency_max_ms=float(latency.max()) if len(latency) else None,
        tokens_produced=produced,
        tokens_after_leave=after,
        tokens_after_leave_share=after / produced if produced else None,
        undelivered_tokens=undelivered,
        undelivered_share=undelivered / produced if produced else None,
    )


@dataclass(frozen=True, slots=True)
class PhaseCancellation:
    """Cancellation in one phase: the left streams whose client left during it, and the excess within it."""

    phase: str
    start: float
    end: float
    left_streams: int
    closed: int
    never_closed: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    latency_max_ms: float | None
    tokens_after_leave: float
    excess: ExcessFigures | None
    """Open upstream streams beyond connected clients within the phase (None without an upstream of ours)."""


def per_phase(
    matched: pd.DataFrame, run_end: float, phases: tuple[PhaseSpan, ...], series: Excess | None
) -> list[PhaseCancellation]:
    """One entry per phase, in order; a stream belongs to the phase in which its client left."""
    rows = per_stream_cancellation(matched, run_end)
    ends = rows["client_end"].to_numpy(dtype=float)
    result = []
    for phase in phases:
        inside = rows[(ends >= phase.start) & (ends < phase.end)]
        latency = inside.loc[inside["closed"], "latency_ms"].to_numpy(dtype=float)
        result.append(
            PhaseCancellation(
                phase=phase.name,
                start=phase.start,
                end=phase.end,
                left_streams=len(inside),
                closed=int(inside["closed"].sum()),
                never_closed=int((~inside["closed"]).sum()),
                latency_p50_ms=_percentile(latency, 50),
                latency_p99_ms=_percentile(latency, 99),
                latency_max_ms=float(latency.max()) if len(latency) else None,
                tokens_after_leave=float(inside["tokens_after_leave"].sum()),
                excess=series.figures(phase.start, phase.end) if series is not None else None,
            )
        )
    return result
