"""What every chart of the report, the comparison and the live view shares: the :class:`Chart` value, the target
colours, one time axis (seconds since the run's start) with the phases as bands and the run's events as markers,
and axes fitted to every data point they carry (a log axis says so in its title).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go  # type: ignore[import-untyped]

from harness.analyse.run_data import RunData
from harness.analyse.upstream import match_streams
from harness.report.palette import target_colors

__all__ = ["MIB", "Chart", "ChartContext", "figure_json", "finish", "fit_axes", "line", "time_chart"]

MIB = float(1 << 20)
_PHASE_FILLS = ("rgba(31,119,180,0.06)", "rgba(0,0,0,0.025)")
_MARKED_EVENTS = {
    "tracemalloc_snapshot": ("snapshot", "#9e9e9e", "dot"),
    "target_died": ("died", "#d62728", "solid"),
    "upstream_behaviour": ("upstream", "#e6a100", "dashdot"),
}
"""events.csv kinds drawn on every time chart: label, colour, dash."""


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


@dataclass(frozen=True, slots=True)
class ChartContext:
    """A loaded run and the colour of each of its targets."""

    run: RunData
    colors: dict[str, str]
    _matched: dict[str, pd.DataFrame] = field(default_factory=dict, compare=False, repr=False)

    def matched(self, name: str) -> pd.DataFrame:
        """``match_streams`` of one target, computed once per page (several charts draw it)."""
        if name not in self._matched:
            self._matched[name] = match_streams(self.run, name)
        return self._matched[name]

    @classmethod
    def of(cls, run: RunData, colors: dict[str, str] | None = None) -> ChartContext:
        return cls(run, colors or target_colors((t.name, t.role) for t in run.targets))

    def color(self, name: str) -> str:
        return self.colors.get(name, "#444444")

    def relative(self, t: Any) -> Any:
        return t - self.run.windows.start


def _events(ctx: ChartContext) -> list[tuple[float, str, str, str]]:
    events = ctx.run.events
    rows = events[events["kind"].isin(list(_MARKED_EVENTS))].dropna(subset=["t"])
    marked = []
    for kind, name, t in zip(rows["kind"], rows["name"], rows["t"], strict=True):
        label, color, dash = _MARKED_EVENTS[str(kind)]
        text = f"{name} {label}" if kind == "target_died" else label
        marked.append((float(ctx.relative(t)), text, color, dash))
    return marked


def time_chart(fig: go.Figure, ctx: ChartContext, y_title: str, *, log: bool = False) -> go.Figure:
    """Phase bands, event markers and axis titles on a chart whose x is seconds since the start.

    Shapes and labels are set in one assignment: plotly's add_vrect/add_vline copy every shape already there,
    which made drawing them the most of a report's rendering time.
    """
    shapes: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for index, phase in enumerate(ctx.run.phases):
        start = float(ctx.relative(phase.start))
        shapes.append(
            {
                "type": "rect",
                "xref": "x",
                "yref": "paper",
                "x0": start,
                "x1": float(ctx.relative(phase.end)),
                "y0": 0,
                "y1": 1,
                "fillcolor": _PHASE_FILLS[index % 2],
                "line": {"width": 0},
                "layer": "below",
            }
        )
        labels.append(_label(start, phase.name, "#444444", "top"))
    seen: set[str] = set()
    for at, text, color, dash in _events(ctx):
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": at,
                "x1": at,
                "y0": 0,
                "y1": 1,
                "line": {"color": color, "dash": dash, "width": 1},
                "opacity": 0.7,
            }
        )
        if text not in seen or "died" in text:  # one label per kind keeps the top readable
            labels.append(_label(at, text, color, "bottom"))
            seen.add(text)
    fig.update_layout(
        shapes=[*fig.layout.shapes, *shapes],
        annotations=[*fig.layout.annotations, *labels],
        xaxis={"title": {"text": "seconds since start"}},
        yaxis={"title": {"text": f"{y_title} (log scale)" if log else y_title}, "type": "log" if log else "linear"},
    )
    windows = ctx.run.windows
    return fit_axes(finish(fig), x_cover=(0.0, max(windows.end - windows.start, 1e-3)))


def _label(at: float, text: str, color: str, anchor: str) -> dict[str, Any]:
    """A small label at the top of the plot: phase names inside it (``top``), events just above it."""
    return {
        "x": at,
        "xref": "x",
        "xanchor": "left",
        "y": 1,
        "yref": "paper",
        "yanchor": anchor,
        "text": text,
        "showarrow": False,
        "font": {"size": 10 if anchor == "top" else 9, "color": color},
    }


def _numbers(values: Any) -> np.ndarray:
    if values is None:
        return np.array([], dtype=float)
    try:
        array = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):
        return np.array([], dtype=float)
    kept: np.ndarray = array[np.isfinite(array)]
    return kept


def _span(values: np.ndarray, log: bool, floor_zero: bool) -> list[float] | None:
    if log:
        values = values[values > 0]
    if not len(values):
        return None
    low, high = float(values.min()), float(values.max())
    if log:
        low, high = math.log10(low), math.log10(high)
        pad = max((high - low) * 0.06, 0.15)
        return [low - pad, high + pad]
    if floor_zero:
        low = min(low, 0.0)
    pad = (high - low) * 0.06 or max(abs(high) * 0.1, 1.0)
    return [low - (pad if low < 0 or not floor_zero else 0.0), high + pad]


def fit_axes(
    fig: go.Figure, *, x: bool = True, floor_zero: bool = True, x_cover: tuple[float, float] | None = None
) -> go.Figure:
    """Set each numeric axis's range to cover every data point of its traces (and ``x_cover``), plus a margin."""
    layout = fig.layout
    ys: list[np.ndarray] = []
    xs: list[np.ndarray] = []
    for trace in fig.data:
        ys.append(_numbers(getattr(trace, "y", None)))
        if trace.type != "box":
            xs.append(_numbers(getattr(trace, "x", None)))
    y_log = layout.yaxis.type == "log"
    y_range = _span(np.concatenate(ys) if ys else np.array([]), y_log, floor_zero)
    if y_range is not None:
        fig.update_yaxes(range=y_range)
    if x_cover is not None:
        xs.append(np.asarray(x_cover, dtype=float))
    if x and xs and layout.xaxis.type not in ("category", "log"):
        x_range = _span(np.concatenate(xs), False, floor_zero=True)
        if x_range is not None:
            fig.update_xaxes(range=[x_range[0], x_range[1]])
    return fig


def finish(fig: go.Figure, height: int = 360) -> go.Figure:
    fig.update_layout(
        height=height,
        margin={"l": 65, "r": 20, "t": 34, "b": 45},
        template="plotly_white",
        legend={"orientation": "h", "y": -0.2},
        hovermode="x unified",
    )
    return fig


def line(ctx: ChartContext, name: str, x: Iterable[Any], y: Iterable[Any], **style: Any) -> go.Scatter:
    """One target's line in its colour; ``legendgroup`` names the target (the tests read colours by it)."""
    label = style.pop("label", name)
    extra = style.pop("line", {})
    return go.Scatter(
        x=np.asarray(x, dtype=float),  # arrays, not lists: plotly validates a list element by element
        y=np.asarray(y, dtype=float),
        name=label,
        legendgroup=name,
        mode=style.pop("mode", "lines"),
        line={"color": ctx.color(name), **extra},
        **style,
    )


def figure_json(chart: Chart) -> str:
    """The figure as JSON for the page, safe inside a <script> element."""
    assert chart.figure is not None
    text: str = chart.figure.to_json(validate=False, pretty=False)
    return text.replace("</", "<\\/")
