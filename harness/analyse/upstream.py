"""A target's upstream streams against its client streams, over the whole run: pairs, peaks and orphans.

Every figure here comes from the target's own upstream's books (``upstream@<target>``: its per-stream records, or
its stats rows when there are none). The pairing and its basis are :mod:`harness.analyse.attribution`'s; the
excess of open upstream streams over connected clients is :mod:`harness.analyse.excess`'s and holds on every basis.
The kernel's ESTABLISHED count (connections.csv) and a relay's own open_upstream_streams are kept beside them as
corroboration, never in their place: a keep-alive pool keeps connections that carry no stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.analyse.attribution import Attribution, attribute
from harness.analyse.excess import Excess, ExcessFigures, excess_series
from harness.analyse.memory import open_at
from harness.analyse.run_data import RunData

__all__ = ["UpstreamFigures", "match_streams", "stream_timeline", "upstream_figures"]


def match_streams(run: RunData, target: str) -> pd.DataFrame:
    """The target's pairs of client and upstream streams (attribution.MATCHED_COLUMNS), on its basis."""
    return attribute(run, target).matched


@dataclass(frozen=True, slots=True)
class UpstreamFigures:
    basis: str
    """id:prompt | id:header | id:user | id:query | time order | aggregate (see harness.analyse.attribution)."""
    client_streams: int
    upstream_streams: int
    """Streams the target's own upstream recorded."""
    matched_streams: int
    """Pairs of a client stream and an upstream stream (0 on the aggregate basis)."""
    never_opened: bool
    """True when the target's upstream never saw a request: nothing about cancellation can be judged."""
    id_channels: dict[str, int]
    """How the ids of the upstream's records arrived (prompt, header, user, query, none: made up upstream)."""
    count_source: str | None
    """Where the open upstream streams were counted: "records", "stats", or None (no upstream of ours)."""
    peak_upstream_streams: int | None
    peak_client_streams: int
    excess: ExcessFigures | None
    """Open upstream streams beyond connected clients over the whole run (None without an upstream of ours)."""
    left_clients: int
    """Client streams that ended by leaving (the excess per left client is stream_seconds / left_clients)."""
    orphans_at_end: int | None
    """Upstream streams still open at the end of the drain with their client gone: paired ones on a paired basis,
    the excess at that moment on the aggregate basis."""
    orphan_stream_seconds: float | None
    """Upstream stream-seconds after their client left: summed over the pairs on a paired basis, the excess
    integrated over the run on the aggregate basis."""
    upstream_open_at_end_kernel: int | None
    """Corroboration: ESTABLISHED connections from the target to its upstream at its last sample in the drain."""
    upstream_open_at_end_relay: int | None
    """Corroboration: the relay's own open_upstream_streams at its last stats row in the drain."""
    note: str


def _last_in(frame: pd.DataFrame, column: str, start: float, end: float) -> int | None:
    rows = frame[(frame["t"] >= start) & (frame["t"] <= end)].dropna(subset=[column])
    if rows.empty:
        rows = frame[frame["t"] <= end].dropna(subset=[column]).tail(1)
    return None if rows.empty else int(rows[column].iloc[-1])


def stream_timeline(run: RunData, target: str, at: np.ndarray, matched: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per time in ``at``: client streams open, the target's upstream streams open, and the paired ones open after
    their client left (orphans)."""
    attribution = attribute(run, target)
    matched = attribution.matched if matched is None else matched
    clients = attribution.clients
    frame = pd.DataFrame(
        {
            "t": at,
            "clients": open_at(clients["start"].to_numpy(dtype=float), clients["end"].to_numpy(dtype=float), at),
        }
    )
    records = attribution.upstream
    if len(records):
        frame["upstream"] = open_at(records["start"].to_numpy(dtype=float), records["end"].to_numpy(dtype=float), at)
    if len(matched):
        up_start = matched["up_start"].to_numpy(dtype=float)
        up_end = matched["up_end"].to_numpy(dtype=float)
        orphan_from = np.fmax(matched["client_end"].to_numpy(dtype=float), up_start)
        keep = ~(orphan_from >= up_end)  # NaN end: still open
        frame["orphans"] = open_at(orphan_from[keep], up_end[keep], at)
    return frame


def _paired_orphans(matched: pd.DataFrame, drain_end: float, run_end: float) -> tuple[int, float]:
    """(pairs still open upstream at the drain's end with their client gone, stream-seconds after leaving)."""
    up_end = matched["up_end"].to_numpy(dtype=float)
    client_end = matched["client_end"].to_numpy(dtype=float)
    up_start = matched["up_start"].to_numpy(dtype=float)
    still_open_at = np.where(np.isnan(up_end), np.inf, up_end)
    orphans = int(np.sum((client_end <= drain_end) & (still_open_at > drain_end)))
    closed_by = np.where(np.isnan(up_end), run_end, up_end)
    return orphans, float(np.clip(closed_by - np.fmax(client_end, up_start), 0, None).sum())


def _peak_upstream(series: Excess | None) -> int | None:
    return int(series.upstream.max()) if series is not None and len(series.upstream) else None


def upstream_figures(run: RunData, target: str, attribution: Attribution | None = None) -> UpstreamFigures:
    """The target's upstream figures over the whole run, on its basis (see the module's docstring)."""
    attribution = attribute(run, target) if attribution is None else attribution
    clients = attribution.clients
    windows = run.windows
    kernel = _last_in(
        run.connections[run.connections["target"] == target], "established", windows.drain_start, windows.drain_end
    )
    relay = _last_in(
        run.stats[(run.stats["target"] == target) & (run.stats["ok"] == 1)],
        "open_upstream_streams",
        windows.drain_start,
        windows.drain_end,
    )
    series = excess_series(run, target, attribution.upstream)
    whole = series.figures(windows.start, windows.end) if series is not None else None
    at_drain_end = series.figures(windows.start, windows.drain_end).at_end if series is not None else None
    starts, ends = clients["start"].to_numpy(dtype=float), clients["end"].to_numpy(dtype=float)
    peak_clients = int(open_at(starts, ends, np.sort(starts)).max()) if len(clients) else 0
    never_opened = attribution.own_upstream and attribution.upstream.empty and (_peak_upstream(series) or 0) == 0
    orphans, orphan_s = (at_drain_end, whole.stream_seconds if whole is not None else None)
    if len(attribution.matched):
        orphans, orphan_s = _paired_orphans(attribution.matched, windows.drain_end, windows.end)
    note = attribution.note
    if attribution.own_upstream and attribution.upstream.empty and not never_opened:
        note = "the upstream's per-stream records are missing: its open streams are counted from its stats rows"
    return UpstreamFigures(
        basis=attribution.basis,
        client_streams=len(clients),
        upstream_streams=len(attribution.upstream),
        matched_streams=len(attribution.matched),
        never_opened=never_opened,
        id_channels=attribution.id_channels,
        count_source=series.source if series is not None else None,
        peak_upstream_streams=_peak_upstream(series),
        peak_client_streams=peak_clients,
        excess=whole,
        left_clients=int((clients["outcome"] == "left").sum()),
        orphans_at_end=orphans,
        orphan_stream_seconds=orphan_s,
        upstream_open_at_end_kernel=kernel,
        upstream_open_at_end_relay=relay,
        note=note,
    )
