"""What the clients saw of one target: time to first byte and token, gaps between tokens, what was delivered.

The client records hold one row per stream, not per token, so the token gap is each stream's mean gap,
``(end - first_token) / (tokens - 1)``, over streams read to their end with at least two tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["ClientFigures", "Percentiles", "client_figures", "per_stream_timings", "percentiles"]


@dataclass(frozen=True, slots=True)
class Percentiles:
    count: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None


def percentiles(seconds: pd.Series) -> Percentiles:
    """p50/p95/p99/max in milliseconds of the non-missing, non-negative values (given in seconds)."""
    values = seconds.to_numpy(dtype=float)
    values = values[~np.isnan(values) & (values >= 0)] * 1000.0
    if not len(values):
        return Percentiles(0, None, None, None, None)
    p50, p95, p99 = (float(v) for v in np.percentile(values, [50, 95, 99]))
    return Percentiles(len(values), p50, p95, p99, float(values.max()))


@dataclass(frozen=True, slots=True)
class ClientFigures:
    streams: int
    outcomes: dict[str, int] = field(default_factory=dict)
    """Streams by outcome: completed, left, truncated, broken, http_error, connect_error."""
    ttfb: Percentiles | None = None
    """Request sent to first response byte."""
    ttft: Percentiles | None = None
    """Request sent to first token."""
    token_gap: Percentiles | None = None
    """Mean gap between tokens of each completed stream."""
    tokens_delivered: int = 0
    bytes_delivered: int = 0
    errors: int = 0
    """Streams that ended truncated, broken, with an HTTP error or without connecting."""


def per_stream_timings(clients: pd.DataFrame) -> pd.DataFrame:
    """One row per client stream: ``start`` (epoch s) and ``ttfb_s``, ``ttft_s``, ``token_gap_s`` (NaN when the stream
    has none: the gap only for streams read to their end with at least two tokens)."""
    completed = (clients["outcome"] == "completed") & (clients["tokens"] >= 2)
    gaps = (clients["end"] - clients["first_token"]) / (clients["tokens"] - 1)
    return pd.DataFrame(
        {
            "start": clients["start"],
            "ttfb_s": clients["first_byte"] - clients["start"],
            "ttft_s": clients["first_token"] - clients["start"],
            "token_gap_s": gaps.where(completed),
        }
    )


def client_figures(clients: pd.DataFrame) -> ClientFigures:
    """Figures of one target's client records."""
    if clients.empty:
        return ClientFigures(streams=0)
    outcomes = {str(k): int(v) for k, v in clients["outcome"].value_counts().sort_index().items()}
    timings = per_stream_timings(clients)
    errors = sum(outcomes.get(kind, 0) for kind in ("truncated", "broken", "http_error", "connect_error"))
    return ClientFigures(
        streams=len(clients),
        outcomes=outcomes,
        ttfb=percentiles(timings["ttfb_s"]),
        ttft=percentiles(timings["ttft_s"]),
        token_gap=percentiles(timings["token_gap_s"].dropna()),
        tokens_delivered=int(clients["tokens"].fillna(0).sum()),
        bytes_delivered=int(clients["bytes"].fillna(0).sum()),
        errors=errors,
    )
