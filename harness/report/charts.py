"""The report's charts: plotly figures built from a loaded run, all on one time axis (seconds since the start).

Each builder returns a :class:`Chart`: a figure, or no figure and the sentence saying why (the report prints the
sentence instead of drawing an empty chart).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go  # type: ignore[import-untyped]

from harness.analyse.cancellation import per_stream_cancellation
from harness.analyse.run_data import RunData
from harness.analyse.upstream import match_streams, stream_timeline

__all__ = ["Chart", "build_charts", "comparison_memory_chart", "figure_json"]

_MIB = float(1 << 20)
_PHASE_FILLS = ("rgba(99,110,250,0.07)", "rgba(0,0,0,0.03)")
_GRID_POINTS = 300
"""Time points of the derived series (streams open, tokens): enough to see every phase, cheap for 1,000 streams."""
_LATENCY_FLOOR_MS = 0.01
"""Latencies of 0 (the upstream had already ended) are drawn here, as a log axis has no 0."""
_COLORS = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880")


@dataclass(frozen=True, slots=True)
class Chart:
    key: str
    """Stable id, used in the page (``chart-<key>``) and by the tests."""
    title: str
    look_for: str
    """One sentence on what to look for, for a reader new to the subject."""
    figure: go.Figure | None
    missing: str = ""
    """Why there is no figure."""


def _color(index: int) -> str:
    return _COLORS[index % len(_COLORS)]


def _color_of(run: RunData, name: str) -> str:
    """The same colour for a target in every chart of a report (its place in meta.json's targets)."""
    names = [target.name for target in run.targets]
    return _color(names.index(name) if name in names else len(names))


def _time_layout(fig: go.Figure, run: RunData, y_title: str) -> go.Figure:
    windows = run.windows
    for index, phase in enumerate(run.phases):
        fig.add_vrect(
            x0=windows.relative(phase.start),
            x1=windows.relative(phase.end),
            fillcolor=_PHASE_FILLS[index % 2],
            line_width=0,
            layer="below",
            annotation_text=phase.name,
            annotation_position="top left",
            annotation_font_size=10,
        )
    fig.update_layout(
        xaxis={"title": "seconds since start", "range": [0, max(windows.end - windows.start, 1e-3)]},
        yaxis={"title": y_title, "rangemode": "tozero"},
    )
    return _common(fig)


def _common(fig: go.Figure, height: int = 360) -> go.Figure:
    fig.update_layout(
        height=height,
        margin={"l": 60, "r": 20, "t": 30, "b": 45},
        template="plotly_white",
        legend={"orientation": "h", "y": -0.2},
        hovermode="x unified",
    )
    return fig


def _relays(run: RunData) -> list[str]:
    return [
        t.name
        for t in run.targets
        if t.role == "relay" or (t.role == "unknown" and (run.clients["target"] == t.name).any())
    ]


def memory_chart(run: RunData) -> Chart:
    title, look = (
        "Server memory (RSS)",
        (
            "A server that respects back-pressure stays flat after the warm-up; one that buffers for slow readers "
            "climbs while they are connected and does not come back down."
        ),
    )
    samples = run.samples.dropna(subset=["t", "rss_bytes"])
    if samples.empty:
        return Chart("memory", title, look, None, "No process samples were recorded (samples.csv is empty).")
    fig = go.Figure()
    for name, rows in samples.groupby("target", sort=False):
        rows = rows.sort_values("t")
        fig.add_trace(
            go.Scatter(
                x=rows["t"] - run.windows.start,
                y=rows["rss_bytes"] / _MIB,
                name=str(name),
                mode="lines",
                line={"color": _color_of(run, str(name))},
            )
        )
    return Chart("memory", title, look, _time_layout(fig, run, "RSS (MiB)"))


def streams_charts(run: RunData, summary: dict[str, Any]) -> list[Chart]:
    look = (
        "Upstream streams should follow client streams down; the red area is upstream streams whose client has "
        "already gone (orphans), which should be empty, above all in the drain."
    )
    relays = _relays(run)
    if not relays:
        return [Chart("streams", "Upstream vs client streams", look, None, "No relay targets in this run.")]
    grid = np.linspace(run.windows.start, run.windows.end, _GRID_POINTS)
    charts = []
    for name in relays:
        title = f"{name}: upstream streams vs client streams"
        key = f"streams-{name}"
        matched = match_streams(run, name)
        timeline = stream_timeline(run, name, _change_points(run, name, matched, grid), matched)
        x = timeline["t"] - run.windows.start
        fig = go.Figure()
        fig.add_trace(
            go.Scatter(x=x, y=timeline["clients"], name="client streams open", line={"color": "#636efa", "shape": "hv"})
        )
        if "upstream" in timeline:
            fig.add_trace(
                go.Scatter(
                    x=x, y=timeline["upstream"], name="upstream streams open", line={"color": "#00cc96", "shape": "hv"}
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=timeline["orphans"],
                    name="orphans (client gone)",
                    fill="tozeroy",
                    line={"color": "#ef553b", "shape": "hv"},
                )
            )
        connections = run.connections[run.connections["target"] == name].dropna(subset=["established"])
        if len(connections):
            fig.add_trace(
                go.Scatter(
                    x=connections["t"] - run.windows.start,
                    y=connections["established"],
                    name="upstream TCP connections (kernel)",
                    line={"color": "#7f7f7f", "dash": "dot"},
                )
            )
        if "upstream" not in timeline and connections.empty:
            note = summary["targets"].get(name, {}).get("upstream", {}).get("note", "")
            charts.append(Chart(key, title, look, None, f"No upstream stream records or counts for {name}. {note}"))
            continue
        charts.append(Chart(key, title, look, _time_layout(fig, run, "streams")))
    return charts


def _change_points(run: RunData, name: str, matched: pd.DataFrame, grid: np.ndarray) -> np.ndarray:
    """The grid plus every moment a count can change, so short streams show exactly (drawn as steps)."""
    clients = run.clients[run.clients["target"] == name]
    moments = [grid, clients["start"].to_numpy(dtype=float), clients["end"].to_numpy(dtype=float)]
    moments += [matched[column].to_numpy(dtype=float) for column in ("up_start", "up_end", "client_end")]
    points = np.unique(np.concatenate(moments))
    points = points[~np.isnan(points)]
    kept: np.ndarray = points[(points >= run.windows.start) & (points <= run.windows.end)]
    return kept


def _cumulative(starts: np.ndarray, ends: np.ndarray, tokens: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Tokens produced by ``at``, each stream's spread evenly from its start to its end."""
    keep = ~np.isnan(starts) & ~np.isnan(ends) & (tokens > 0)
    starts, ends, tokens = starts[keep], ends[keep], tokens[keep]
    span = np.maximum(ends - starts, 1e-9)
    share = np.clip((at[:, None] - starts[None, :]) / span[None, :], 0.0, 1.0)
    result: np.ndarray = np.asarray(share @ tokens, dtype=float)
    return result


def tokens_chart(run: RunData) -> Chart:
    title, look = (
        "Tokens produced upstream vs tokens delivered to clients",
        (
            "The gap between a target's solid (produced) and dashed (delivered) lines is work the upstream did for "
            "nobody: it should stay small when clients leave early."
        ),
    )
    relays = [name for name in _relays(run) if (run.clients["target"] == name).any()]
    if not relays or run.upstream_streams.empty:
        return Chart("tokens", title, look, None, "Needs client records and the upstream's per-stream records.")
    grid = np.linspace(run.windows.start, run.windows.end, _GRID_POINTS)
    fig = go.Figure()
    drawn = 0
    for name in relays:
        matched = match_streams(run, name)
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
        x = grid - run.windows.start
        color = _color_of(run, name)
        fig.add_trace(go.Scatter(x=x, y=produced, name=f"{name} produced", line={"color": color}))
        fig.add_trace(go.Scatter(x=x, y=delivered, name=f"{name} delivered", line={"color": color, "dash": "dash"}))
        drawn += 1
    if not drawn:
        return Chart("tokens", title, look, None, "No client stream id was found in the upstream's records.")
    return Chart("tokens", title, look, _time_layout(fig, run, "tokens (cumulative)"))


def latency_chart(run: RunData) -> Chart:
    title, look = (
        "Cancellation latency: client leaves -> upstream stream closes",
        (
            "Each dot is a stream the client left; a target that cancels its upstream sits near zero, one that does "
            f"not sits at the remaining length of the stream. Upstream streams that had already ended are drawn at "
            f"{_LATENCY_FLOOR_MS} ms; those never closed are counted in the table above, not drawn."
        ),
    )
    fig = go.Figure()
    drawn = 0
    for name in _relays(run):
        rows = per_stream_cancellation(match_streams(run, name), run.windows.end)
        latency = rows["latency_ms"].dropna().clip(lower=_LATENCY_FLOOR_MS)
        if latency.empty:
            continue
        fig.add_trace(
            go.Box(
                y=latency,
                name=name,
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker={"color": _color_of(run, name), "size": 4},
                text=rows.loc[latency.index, "stream_id"],
            )
        )
        drawn += 1
    if not drawn:
        return Chart(
            "latency",
            title,
            look,
            None,
            "No stream that a client left could be matched to an upstream record by its stream id.",
        )
    fig.update_layout(yaxis={"title": "ms (log scale)", "type": "log"}, hovermode="closest")
    return Chart("latency", title, look, _common(fig))


def timing_chart(summary: dict[str, Any]) -> Chart:  # colours follow summary["targets"], in meta.json's order
    title, look = (
        "Client timings (percentiles)",
        (
            "Time to first byte and first token show how fast a stream starts; the token gap how smoothly it flows. "
            "Compare targets at the same percentile."
        ),
    )
    fig = go.Figure()
    drawn = 0
    labels = (("ttfb", "first byte"), ("ttft", "first token"), ("token_gap", "token gap"))
    for index, (name, target) in enumerate(summary["targets"].items()):
        clients = target.get("clients", {})
        if not clients.get("available"):
            continue
        x, y = [], []
        for key, label in labels:
            for q in ("p50", "p95", "p99"):
                value = (clients.get(key) or {}).get(f"{q}_ms")
                if value is not None:
                    x.append(f"{label} {q}")
                    y.append(value)
        if x:
            fig.add_trace(go.Bar(x=x, y=y, name=name, marker={"color": _color(index)}))
            drawn += 1
    if not drawn:
        return Chart("timings", title, look, None, "No client records with timings in this run.")
    fig.update_layout(barmode="group", yaxis={"title": "ms"}, hovermode="closest")
    return Chart("timings", title, look, _common(fig))


def build_charts(run: RunData, summary: dict[str, Any]) -> list[Chart]:
    """Every chart of a run's report, in page order."""
    return [
        memory_chart(run),
        *streams_charts(run, summary),
        tokens_chart(run),
        latency_chart(run),
        timing_chart(summary),
    ]


def comparison_memory_chart(runs: Sequence[tuple[str, RunData]]) -> Chart:
    """Memory of every target of every run, each run's time from its own start."""
    title, look = (
        "Server memory (RSS) of each run",
        (
            "Lines of the same target should overlap when nothing changed; a target that climbs in one run but not "
            "the other changed how it buffers."
        ),
    )
    fig = go.Figure()
    dashes = ("solid", "dash", "dot", "dashdot")
    names: list[str] = []
    for run_index, (label, run) in enumerate(runs):
        samples = run.samples.dropna(subset=["t", "rss_bytes"])
        for name, rows in samples.groupby("target", sort=False):
            if str(name) not in names:
                names.append(str(name))
            rows = rows.sort_values("t")
            fig.add_trace(
                go.Scatter(
                    x=rows["t"] - run.windows.start,
                    y=rows["rss_bytes"] / _MIB,
                    name=f"{name} ({label})",
                    line={"color": _color(names.index(str(name))), "dash": dashes[run_index % len(dashes)]},
                )
            )
    if not fig.data:
        return Chart("memory", title, look, None, "No run has process samples.")
    fig.update_layout(xaxis={"title": "seconds since each run's start"}, yaxis={"title": "RSS (MiB)"})
    return Chart("memory", title, look, _common(fig))


def figure_json(chart: Chart) -> str:
    """The figure as JSON for the page, safe inside a <script> element."""
    assert chart.figure is not None
    text: str = chart.figure.to_json(validate=False, pretty=False)
    return text.replace("</", "<\\/")
