"""Upstream streams against client streams, per relay: matching by stream id, the timeline, and orphans.

A relay's client streams (clients.csv rows whose ``target`` is the relay) are matched to the upstream's records
(upstream_streams.csv) by ``stream_id`` = ``id``: the relay forwards the client's X-Request-ID. An *orphan* is an
upstream stream whose client has already left: it costs the upstream work that nobody reads. When none of a relay's
ids appear upstream (a relay that drops the id) the figures fall back to the aggregate counts the relay and the
kernel give (stats.csv ``open_upstream_streams``, connections.csv ``established``) and ``basis`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.analyse.memory import open_at
from harness.analyse.run_data import RunData

__all__ = ["UpstreamFigures", "match_streams", "stream_timeline", "upstream_figures"]


def match_streams(run: RunData, target: str) -> pd.DataFrame:
    """The target's client records joined to their upstream records (inner join on the stream id).

    Columns: stream_id, outcome, client_start, client_first_token, client_end, client_tokens, up_start,
    up_first_token, up_end (NaN while still open), tokens_sent, end_reason.
    """
    clients = run.clients[run.clients["target"] == target]
    upstream = run.upstream_streams.drop_duplicates("id", keep="last")
    joined = clients.merge(upstream, left_on="stream_id", right_on="id", how="inner", suffixes=("", "_up"))
    return pd.DataFrame(
        {
            "stream_id": joined["stream_id"],
            "outcome": joined["outcome"],
            "leave_when": joined["leave_when"],
            "client_start": joined["start"],
            "client_first_token": joined["first_token"],
            "client_end": joined["end"],
            "client_tokens": joined["tokens"],
            "up_start": joined["start_up"],
            "up_first_token": joined["first_token_up"],
            "up_end": joined["end_up"],
            "tokens_sent": joined["tokens_sent"],
            "end_reason": joined["end_reason"],
        }
    ).reset_index(drop=True)


@dataclass(frozen=True, slots=True)
class UpstreamFigures:
    basis: str
    """"stream ids": from matched per-stream records; "aggregate": from the relay's and kernel's counts."""
    client_streams: int
    matched_streams: int
    """Client streams of this target found in the upstream's records."""
    peak_upstream_streams: int | None
    peak_client_streams: int
    orphans_at_end: int | None
    """Upstream streams of this target still open at the end of the drain with their client gone."""
    orphan_stream_seconds: float | None
    """Sum over streams of the time the upstream stream stayed open after its client left."""
    upstream_open_at_end_kernel: int | None
    """ESTABLISHED connections from the target to the upstream at its last sample in the drain (connections.csv)."""
    upstream_open_at_end_relay: int | None
    """The relay's own open_upstream_streams at its last stats row in the drain (stats.csv)."""
    note: str


def _last_in(frame: pd.DataFrame, column: str, start: float, end: float) -> int | None:
    rows = frame[(frame["t"] >= start) & (frame["t"] <= end)].dropna(subset=[column])
    if rows.empty:
        rows = frame[frame["t"] <= end].dropna(subset=[column]).tail(1)
    return None if rows.empty else int(rows[column].iloc[-1])


def stream_timeline(run: RunData, target: str, at: np.ndarray, matched: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per time in ``at``: client streams open, matched upstream streams open, and orphans among them."""
    clients = run.clients[run.clients["target"] == target]
    matched = match_streams(run, target) if matched is None else matched
    frame = pd.DataFrame(
        {
            "t": at,
            "clients": open_at(clients["start"].to_numpy(dtype=float), clients["end"].to_numpy(dtype=float), at),
        }
    )
    if len(matched):
        up_start = matched["up_start"].to_numpy(dtype=float)
        up_end = matched["up_end"].to_numpy(dtype=float)
        client_end = matched["client_end"].to_numpy(dtype=float)
        frame["upstream"] = open_at(up_start, up_end, at)
        orphan_from = np.fmax(client_end, up_start)
        orphan_to = np.where(np.isnan(up_end), np.inf, up_end)
        keep = orphan_from < orphan_to
        frame["orphans"] = open_at(orphan_from[keep], np.where(np.isinf(orphan_to), np.nan, orphan_to)[keep], at)
    return frame


def upstream_figures(run: RunData, target: str, matched: pd.DataFrame | None = None) -> UpstreamFigures:
    """Orphans and peaks of one relay, from matched stream records or, failing that, from aggregate counts."""
    matched = match_streams(run, target) if matched is None else matched
    clients = run.clients[run.clients["target"] == target]
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
    grid = np.linspace(windows.start, windows.end, 400) if windows.end > windows.start else np.array([windows.start])
    timeline = stream_timeline(run, target, grid, matched)
    peak_clients = int(timeline["clients"].max()) if len(clients) else 0
    if len(matched):
        up_end = matched["up_end"].to_numpy(dtype=float)
        client_end = matched["client_end"].to_numpy(dtype=float)
        up_start = matched["up_start"].to_numpy(dtype=float)
        still_open_at = np.where(np.isnan(up_end), np.inf, up_end)
        orphans = int(np.sum((client_end <= windows.drain_end) & (still_open_at > windows.drain_end)))
        closed_by = np.where(np.isnan(up_end), windows.end, up_end)
        orphan_s = float(np.clip(closed_by - np.fmax(client_end, up_start), 0, None).sum())
        unmatched = len(clients) - len(matched)
        note = f"{len(matched)} of {len(clients)} client streams matched to upstream records by stream id"
        if unmatched:
            note += f"; {unmatched} never reached the upstream (or were not recorded there)"
        return UpstreamFigures(
            basis="stream ids",
            client_streams=len(clients),
            matched_streams=len(matched),
            peak_upstream_streams=int(timeline["upstream"].max()),
            peak_client_streams=peak_clients,
            orphans_at_end=orphans,
            orphan_stream_seconds=orphan_s,
            upstream_open_at_end_kernel=kernel,
            upstream_open_at_end_relay=relay,
            note=note,
        )
    aggregate = kernel if kernel is not None else relay
    counts = run.connections[run.connections["target"] == target]["established"].dropna()
    relay_counts = run.stats[run.stats["target"] == target]["open_upstream_streams"].dropna()
    peak = counts if len(counts) else relay_counts
    note = (
        "none of this target's stream ids appear in the upstream's records (it may drop X-Request-ID): "
        "orphans are the aggregate upstream count at the end of the drain, when no client is connected"
    )
    if not len(clients):
        note = "no client streams were recorded for this target"
    return UpstreamFigures(
        basis="aggregate",
        client_streams=len(clients),
        matched_streams=0,
        peak_upstream_streams=int(peak.max()) if len(peak) else None,
        peak_client_streams=peak_clients,
        orphans_at_end=aggregate,
        orphan_stream_seconds=None,
        upstream_open_at_end_kernel=kernel,
        upstream_open_at_end_relay=relay,
        note=note,
    )
