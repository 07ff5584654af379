"""How far a relay pulled its upstream ahead of its slow readers, from the upstream's own books.

A relay that respects back-pressure pulls from the upstream only as fast as its client reads, plus what its
buffers hold (its own, the kernel's socket buffers on both sides): for a slow or stalled reader the upstream's
stream stays at most a buffer ahead of what the client read. A relay that buffers without bound (the eager relay)
pulls at the upstream's own rate whatever the client reads, so the gap grows for as long as the client stays.

Per slow or stalled client stream paired *exactly* with its upstream stream (by an id, attribution.py), the run-ahead
is what the upstream sent while the client was connected minus what the client read. The upstream's record gives
only its total, so the part sent by the client's leaving is taken pro rata over the upstream stream's life from its
first token to its end (a relay that keeps reading after its client left is a cancellation matter, not a backlog).
Two estimates, the smaller kept: in bytes (exact for a relay that passes the bytes through; a gateway that rebuilds
the events shrinks or grows them) and in tokens times the upstream's bytes per token (exact for a gateway that maps
one delta to one delta; a relay that merges chunks reads as fewer tokens). Each errs high only where the other
holds, so the smaller errs low: it confirms a backlog, never invents one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.analyse.memory_causes import SLOW_BEHAVIOUR

__all__ = ["RunAhead", "run_ahead"]


@dataclass(frozen=True, slots=True)
class RunAhead:
    streams: int
    """Slow or stalled client streams paired exactly with their upstream stream."""
    max_bytes: float
    """The largest run-ahead among them."""
    median_bytes: float
    max_stream: str
    """The client stream id of the largest."""
    at_peak_bytes: float | None
    """Summed over those connected at the moment asked about (the memory's peak): an upper bound of the unread
    data a relay could hold for them then (each stream's run-ahead by its leaving, never less than at the peak);
    None when none of them was connected then."""
    at_peak_streams: int


def _sent_share(matched: pd.DataFrame) -> np.ndarray:
    """Share of each upstream stream's output sent by the time its client left (1 where it cannot be told)."""
    first = matched["up_first_token"].to_numpy(dtype=float)
    end = matched["up_end"].to_numpy(dtype=float)
    left = matched["client_end"].to_numpy(dtype=float)
    life = end - first
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.clip((left - first) / life, 0.0, 1.0)
    unknown = np.isnan(share) | ~(life > 0)
    share[unknown] = 1.0
    share[~np.isnan(first) & ~np.isnan(left) & (left <= first)] = 0.0
    return np.asarray(share)


def run_ahead(matched: pd.DataFrame, at: float | None = None) -> RunAhead | None:
    """``matched``: a target's pairs (attribution.MATCHED_COLUMNS); ``at``: the moment (epoch s) to sum the
    run-ahead of the streams connected then. None without an exact pair of a slow stream whose bytes both sides
    recorded."""
    if matched.empty or "bytes_sent" not in matched:
        return None
    slow = matched[
        matched["exact"].astype(bool)
        & matched["behaviour"].astype(str).str.contains(SLOW_BEHAVIOUR, regex=True)
        & matched["bytes_sent"].notna()
        & matched["client_bytes"].notna()
    ]
    if slow.empty:
        return None
    share = _sent_share(slow)
    bytes_sent = slow["bytes_sent"].to_numpy(dtype=float)
    tokens_sent = slow["tokens_sent"].fillna(0).to_numpy(dtype=float)
    by_bytes = bytes_sent * share - slow["client_bytes"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_token = np.where(tokens_sent > 0, bytes_sent / tokens_sent, 0.0)
    by_tokens = (tokens_sent * share - slow["client_tokens"].fillna(0).to_numpy(dtype=float)) * per_token
    ahead = np.clip(np.minimum(by_bytes, by_tokens), 0.0, None)
    top = int(np.argmax(ahead))
    connected = np.zeros(len(slow), dtype=bool)
    if at is not None:
        start = slow["client_start"].to_numpy(dtype=float)
        end = slow["client_end"].to_numpy(dtype=float)
        connected = (start <= at) & (np.isnan(end) | (end > at))
    return RunAhead(
        streams=len(slow),
        max_bytes=float(ahead[top]),
        median_bytes=float(np.median(ahead)),
        max_stream=str(slow["stream_id"].iloc[top]),
        at_peak_bytes=float(ahead[connected].sum()) if at is not None and connected.any() else None,
        at_peak_streams=int(connected.sum()),
    )
