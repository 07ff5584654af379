"""Charts of streams: how many are open per target (client and upstream), upstream streams held for no client,
tokens produced against delivered, and the cancellation latency of every stream a client left, wave by wave.

Counts are drawn as the mean open in each short window (stream-seconds / window length), so a relay that closes its
upstream within milliseconds of each leave reads as about zero, not as a comb of one-stream spikes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go  # type: ignore[import-untyped]

from harness.analyse.cancellation import per_stream_cancellation
from harness.analyse.upstream import stream_timeline
from harness.report.chart_base import Chart, ChartContext, finish, fit_axes, line, time_chart

__all__ = ["latency_chart", "orphans_chart", "relays", "streams_chart", "tokens_chart", "window_s"]

_GRID_POINTS = 300
_LATENCY_FLOOR_MS = 0.01
"""Latencies of 0 (the upstream had already ended) are drawn here, as a log axis has no 0."""


def relays(ctx: ChartContext) -> list[str]:
    run = ctx.run
    return [
        t.name
        for t in run.targets
        if t.role == "relay" or (t.role == "unknown" and (run.clients["target"] == t.name).any())
    ]


def window_s(ctx: ChartContext) -> float:
    """The window of the per-window series: about 120 per run, at least half a second."""
    windows = ctx.run.windows
    return max(0.5, (windows.end - windows.start) / 120)


def _windowed(ctx: ChartContext, name: str, matched: pd.DataFrame) -> pd.DataFrame:
    """Mean client, upstream and orphan streams open per window (columns t = window start, clients, ...)."""
    windows = ctx.run.windows
    step = window_s(ctx)
    fine = np.arange(windows.start, windows.end + step, step / 10)
    timeline = stream_timeline(ctx.run, name, fine, matched)
    timeline["window"] = ((timeline["t"] - windows.start) // step) * step
    means = timeline.drop(columns=["t"]).groupby("window", sort=True).mean()
    return means.reset_index().rename(columns={"window": "t"})


def streams_chart(ctx: ChartContext) -> Chart:
    title = "Streams open: clients (solid) and upstream (dashed)"
    look = (
        "Mean streams open in each window. The dashed upstream line should follow the solid client line down when "
        "clients leave; a dashed line that stays up has upstream streams working for nobody."
    )
    fig = go.Figure()
    for name in relays(ctx):
        if not (ctx.run.clients["target"] == name).any():
            continue
        means = _windowed(ctx, name, ctx.matched(name))
        fig.add_trace(line(ctx, name, means["t"], means["clients"], label=f"{name} clients", line={"shape": "hv"}))
        if "upstream" in means:
            x, y, label = means["t"], means["upstream"], f"{name} upstream"
        else:  # no per-stream records yet (mid-run) or none matched: the relay's own count
            counted = _relay_counts(ctx, name)
            x, y, label = (
                ctx.relative(counted["t"]),
                counted["open_upstream_streams"],
                f"{name} upstream (relay's count)",
            )
        if len(x):
            fig.add_trace(line(ctx, name, x, y, label=label, line={"shape": "hv", "dash": "dash"}))
    if not fig.data:
        return Chart("streams", title, look, None, "No relay targets with client streams in this run.")
    return Chart("streams", title, look, time_chart(fig, ctx, "streams open (mean per window)"))


def _relay_counts(ctx: ChartContext, name: str) -> pd.DataFrame:
    """The relay's own stats rows with both stream counts."""
    stats = ctx.run.stats
    return stats[(stats["target"] == name) & (stats["ok"] == 1)].dropna(
        subset=["t", "open_upstream_streams", "active_client_streams"]
    )


def _stats_orphans(ctx: ChartContext, name: str) -> pd.DataFrame:
    """Upstream streams beyond connected clients as the relay itself counts them (when ids could not be matched)."""
    rows = _relay_counts(ctx, name)
    return pd.DataFrame(
        {"t": rows["t"], "orphans": (rows["open_upstream_streams"] - rows["active_client_streams"]).clip(lower=0)}
    )


def orphans_chart(ctx: ChartContext) -> Chart:
    title = "Upstream streams held for no client (orphans)"
    look = (
        "Upstream streams whose client has already gone, mean per window. A relay that cancels stays at zero; one "
        "that does not climbs with each wave of leaving clients and stays up into the drain."
    )
    fig = go.Figure()
    for name in relays(ctx):
        matched = ctx.matched(name)
        if len(matched):
            means = _windowed(ctx, name, matched)
            x, y, how = means["t"], means["orphans"], "from stream records"
        else:
            counted = _stats_orphans(ctx, name)
            if counted.empty:
                continue
            x, y, how = ctx.relative(counted["t"]), counted["orphans"], "relay's counts"
        fig.add_trace(line(ctx, name, x, y, label=f"{name} ({how})", fill="tozeroy", line={"shape": "hv"}, opacity=0.8))
    if not fig.data:
        return Chart("orphans", title, look, None, "No upstream stream records or relay counts for any target.")
    return Chart("orphans", title, look, time_chart(fig, ctx, "upstream streams with no client"))


def _cumulative(starts: np.ndarray, ends: np.ndarray, tokens: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Tokens produced by ``at``, each stream's spread evenly from its start to its end."""
    keep = ~np.isnan(starts) & ~np.isnan(ends) & (tokens > 0)
    starts, ends, tokens = starts[keep], ends[keep], tokens[keep]
    span = np.maximum(ends - starts, 1e-9)
    share = np.clip((at[:, None] - starts[None, :]) / span[None, :], 0.0, 1.0)
    result: np.ndarray = np.asarray(share @ tokens, dtype=float)
    return result


def tokens_chart(ctx: ChartContext) -> Chart:
    title = "Tokens produced upstream (solid) vs delivered to clients (dashed)"
    look = (
        "The gap between a target's solid and dashed lines is work the upstream did for nobody: it should stay small "
        "when clients leave early."
    )
    run = ctx.run
    if run.upstream_streams.empty:
        return Chart("tokens", title, look, None, "Needs the upstream's per-stream records (upstream_streams.csv).")
    grid = np.linspace(run.windows.start, run.windows.end, _GRID_POINTS)
    fig = go.Figure()
    for name in relays(ctx):
        matched = ctx.matched(name)
        if matched.empty:
            continue
        up_end = matched["up_end"].to_numpy(dtype=float)
        up_end = np.where(np.isnan(up_end), run.windows.end, up_end)
        up_first = matched["up_first_token"].to_numpy(dtype=float)
        produced = _cumulative(up_first, up_end, matched["tokens_sent"].fillna(0).to_numpy(dtype=float), grid)
        clients = run.clients[run.clients["target"] == name]
        delivered = _cumulative(
            clients["first_token"].to_numpy(dtype=float),
            clients["end"].to_numpy(dtype=float),
            clients["tokens"].fillna(0).to_numpy(dtype=float),
            grid,
        )
        x = ctx.relative(grid)
        fig.add_trace(line(ctx, name, x, produced, label=f"{name} produced"))
        fig.add_trace(line(ctx, name, x, delivered, label=f"{name} delivered", line={"dash": "dash"}))
    if not fig.data:
        return Chart("tokens", title, look, None, "No client stream id was found in the upstream's records.")
    return Chart("tokens", title, look, time_chart(fig, ctx, "tokens (cumulative)"))


def _phase_of(ctx: ChartContext, at: np.ndarray) -> list[str]:
    names = []
    for t in at:
        found = next((p.name for p in ctx.run.phases if p.start <= t < p.end), None)
        names.append(found or (ctx.run.phases[-1].name if ctx.run.phases and t >= ctx.run.phases[-1].end else "—"))
    return names


def latency_chart(ctx: ChartContext) -> Chart:
    title = "Cancellation latency per wave: client leaves -> upstream stream closes"
    look = (
        "Each dot is a stream a client left, under the phase in which it left; a relay that cancels its upstream sits "
        f"near zero, one that does not at the rest of the stream. Upstream streams already ended are drawn at "
        f"{_LATENCY_FLOOR_MS} ms; crosses are streams never closed, drawn at the run's end (at least that long)."
    )
    run = ctx.run
    fig = go.Figure()
    for name in relays(ctx):
        matched = ctx.matched(name)
        rows = per_stream_cancellation(matched, run.windows.end)
        if rows.empty:
            continue
        ends = matched.set_index("stream_id")["client_end"]
        client_end = ends.reindex(rows["stream_id"]).to_numpy(dtype=float)
        wave = _phase_of(ctx, client_end)
        closed = rows["closed"].to_numpy(dtype=bool)
        latency = rows["latency_ms"].to_numpy(dtype=float).clip(min=_LATENCY_FLOOR_MS)
        color = ctx.color(name)
        if closed.any():
            fig.add_trace(
                go.Box(
                    x=[w for w, c in zip(wave, closed, strict=True) if c],
                    y=latency[closed],
                    name=name,
                    legendgroup=name,
                    offsetgroup=name,
                    boxpoints="all",
                    jitter=0.4,
                    pointpos=0,
                    marker={"color": color, "size": 4},
                    line={"color": color},
                    text=rows.loc[closed, "stream_id"].tolist(),
                )
            )
        if (~closed).any():
            at_least = np.clip((run.windows.end - client_end[~closed]) * 1000.0, _LATENCY_FLOOR_MS, None)
            fig.add_trace(
                go.Box(
                    x=[w for w, c in zip(wave, closed, strict=True) if not c],
                    y=at_least,
                    name=f"{name} never closed",
                    legendgroup=name,
                    offsetgroup=name,
                    boxpoints="all",
                    fillcolor="rgba(0,0,0,0)",
                    line={"color": "rgba(0,0,0,0)"},
                    marker={"color": color, "size": 7, "symbol": "x"},
                    pointpos=0,
                    jitter=0.4,
                    text=rows.loc[~closed, "stream_id"].tolist(),
                )
            )
    if not fig.data:
        return Chart(
            "latency", title, look, None, "No stream that a client left could be matched to an upstream record."
        )
    fig.update_layout(
        boxmode="group",
        yaxis={"title": {"text": "ms (log scale)"}, "type": "log"},
        xaxis={"title": {"text": "phase in which the client left"}, "type": "category"},
        hovermode="closest",
    )
    return Chart("latency", title, look, fit_axes(finish(fig), x=False))
