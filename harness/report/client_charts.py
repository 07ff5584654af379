"""Charts of what the clients saw: time to first token and the token gap as p50/p95 per window over the run, per
target (as Locust and k6 users read them), and the whole run's percentiles side by side.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go  # type: ignore[import-untyped]

from harness.analyse.clients import client_figures, per_stream_timings
from harness.report.chart_base import Chart, ChartContext, finish, fit_axes, line, time_chart

__all__ = ["percentile_chart", "timing_chart"]

_WINDOWS = 30
"""About this many windows per run; each point is the percentile of the streams that started in its window."""
_MIN_WINDOW_S = 1.0


def _by_window(ctx: ChartContext, column: str) -> dict[str, pd.DataFrame]:
    windows = ctx.run.windows
    step = max(_MIN_WINDOW_S, (windows.end - windows.start) / _WINDOWS)
    found: dict[str, pd.DataFrame] = {}
    for name in ctx.colors:
        clients = ctx.run.clients[ctx.run.clients["target"] == name]
        if clients.empty:
            continue
        timings = per_stream_timings(clients).dropna(subset=["start", column])
        values = timings[timings[column] >= 0]
        if values.empty:
            continue
        window = ((values["start"] - windows.start) // step) * step + step / 2
        grouped = (values[column] * 1000.0).groupby(window)
        found[name] = pd.DataFrame(
            {"p50": grouped.quantile(0.5), "p95": grouped.quantile(0.95), "n": grouped.size()}
        ).reset_index(names="t")
    return found


def percentile_chart(ctx: ChartContext, column: str) -> Chart:
    what = {"ttft_s": "Time to first token", "token_gap_s": "Token gap"}[column]
    key = {"ttft_s": "ttft", "token_gap_s": "gap"}[column]
    title = f"{what} over the run: p50 (solid) and p95 (dashed) per window"
    look = (
        "Each point is the percentile of the streams that started in its window (hover for how many). "
        f"A {what.lower()} that climbs during a phase is the server falling behind; "
        "compare targets at the same percentile."
        + (" The gap is each completed stream's mean gap between tokens." if key == "gap" else "")
    )
    fig = go.Figure()
    for name, rows in _by_window(ctx, column).items():
        text = [f"{n} streams" for n in rows["n"]]
        fig.add_trace(line(ctx, name, rows["t"], rows["p50"], label=f"{name} p50", mode="lines+markers", text=text))
        fig.add_trace(
            line(ctx, name, rows["t"], rows["p95"], label=f"{name} p95", line={"dash": "dash"}, mode="lines", text=text)
        )
    if not fig.data:
        return Chart(key, title, look, None, f"No client stream has a {what.lower()} in this run.")
    values = np.concatenate([np.asarray(trace.y, dtype=float) for trace in fig.data])
    positive = values[values > 0]
    log = len(positive) > 0 and positive.max() / max(positive.min(), 1e-9) > 50
    return Chart(key, title, look, time_chart(fig, ctx, "ms", log=log))


def timing_chart(ctx: ChartContext) -> Chart:
    title = "Client timings over the whole run (percentiles)"
    look = (
        "Time to first byte and first token show how fast a stream starts; the token gap how smoothly it flows. "
        "Compare targets at the same percentile."
    )
    fig = go.Figure()
    labels = (("ttfb", "first byte"), ("ttft", "first token"), ("token_gap", "token gap"))
    for name in ctx.colors:
        clients = ctx.run.clients[ctx.run.clients["target"] == name]
        if clients.empty:
            continue
        figures = client_figures(clients)
        x, y = [], []
        for key, label in labels:
            for q in ("p50", "p95", "p99"):
                value = getattr(getattr(figures, key), f"{q}_ms", None)
                if value is not None:
                    x.append(f"{label} {q}")
                    y.append(value)
        if x:
            fig.add_trace(go.Bar(x=x, y=y, name=name, legendgroup=name, marker={"color": ctx.color(name)}))
    if not fig.data:
        return Chart("timings", title, look, None, "No client records with timings in this run.")
    fig.update_layout(barmode="group", yaxis={"title": {"text": "ms"}}, hovermode="closest")
    return Chart("timings", title, look, fit_axes(finish(fig), x=False))
