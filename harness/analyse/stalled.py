"""Stalled clients: how long a target keeps a client that reads nothing, and that client's upstream, open.

A stalled reader (clients.csv ``behaviour`` stalled) reads the headers and then nothing until it leaves. A server
with a send timeout drops it (and cancels its upstream) a few seconds after its buffers fill; one without keeps
both for as long as the client stays. The evidence is the upstream's own record of the stalled client's stream:
closed well before the client left (and not because it had sent everything) means the server dropped it; still
open when the client left means the server held it for the client's whole stay; sent to its end, the stream fitted
in the buffers and shows nothing either way (it is left out). Only clients that stayed at least ``min_window_s``
count, so "held" means "held longer than that".

Streams cut short by the server (outcome ``broken``, or ``truncated``: ended without the API's terminator) are
counted for every behaviour, so they are shown rather than lost among the clients that left.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["StalledFigures", "stalled_figures"]

_SLACK_S = 0.5
"""An upstream that closed within this of the client leaving closed because the client left."""


@dataclass(frozen=True, slots=True)
class StalledFigures:
    stalled_streams: int
    """Stalled client streams of the target."""
    judged_streams: int
    """Of those, the ones that stayed at least min_window_s and whose upstream stream is in the records."""
    window_s: float | None
    """Longest stay of a stalled client (first byte to leaving)."""
    hold_s: float | None
    """Median time the server kept a judged stalled client's stream open (upstream record), from the request."""
    held_to_leave: int
    """Judged streams the server kept open until the client itself left."""
    dropped: int
    """Judged streams the server closed before the client left."""
    cut_short: int
    """Client streams of any behaviour that the server ended early (outcome broken or truncated)."""


def stalled_figures(clients: pd.DataFrame, matched: pd.DataFrame, min_window_s: float) -> StalledFigures | None:
    """The figures of one target (its client records, and those matched to upstream records); None when no
    client of the target stalled."""
    cut_short = int(clients["outcome"].isin(["broken", "truncated"]).sum())
    stalled = clients[clients["behaviour"].astype(str).str.contains("stall")]
    if stalled.empty:
        return None
    began = stalled["first_byte"].fillna(stalled["start"]).to_numpy(dtype=float)
    stays = stalled["end"].to_numpy(dtype=float) - began
    window = float(np.nanmax(stays)) if np.isfinite(stays).any() else None
    rows = (
        matched[matched["stream_id"].isin(stalled.loc[stays >= min_window_s, "stream_id"])] if len(matched) else matched
    )
    holds: list[float] = []
    held = dropped = 0
    for client_start, client_end, up_end, reason in zip(
        rows.get("client_start", pd.Series(dtype=float)),
        rows.get("client_end", pd.Series(dtype=float)),
        rows.get("up_end", pd.Series(dtype=float)),
        rows.get("end_reason", pd.Series(dtype=str)),
        strict=True,
    ):
        closed_early = not np.isnan(up_end) and up_end < client_end - _SLACK_S
        if closed_early and str(reason) == "completed":
            continue  # the whole stream fitted in the buffers: no evidence of a send timeout or of its absence
        if closed_early:
            dropped += 1
            holds.append(float(up_end - client_start))
        else:
            held += 1
            holds.append(float(client_end - client_start))
    return StalledFigures(
        stalled_streams=len(stalled),
        judged_streams=len(holds),
        window_s=window,
        hold_s=float(np.median(holds)) if holds else None,
        held_to_leave=held,
        dropped=dropped,
        cut_short=cut_short,
    )
