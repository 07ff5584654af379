"""The report's charts in page order, built from a loaded run (finished or still going: the live view draws the
same charts from the data so far), and the comparison's chart of several runs.

Each builder returns a :class:`Chart`: a figure, or no figure and the sentence saying why (the page prints the
sentence instead of drawing an empty chart).
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go  # type: ignore[import-untyped]

from harness.analyse.run_data import RunData
from harness.report.chart_base import MIB, Chart, ChartContext, figure_json, fit_axes, line, time_chart
from harness.report.client_charts import percentile_chart, timing_chart
from harness.report.palette import target_colors
from harness.report.process_charts import process_chart
from harness.report.stream_charts import latency_chart, orphans_chart, streams_chart, tokens_chart

__all__ = ["SECTIONS", "Chart", "build_charts", "comparison_memory_chart", "figure_json"]

SECTIONS = (
    ("memory", "Memory", ("memory", "traced", "buffer")),
    ("upstream", "Upstream streams against client streams", ("orphans", "streams", "tokens")),
    ("cancellation", "Cancellation, wave by wave", ("latency",)),
    ("clients", "What the clients saw", ("ttft", "gap", "timings")),
    ("resources", "CPU and per-connection resources", ("cpu", "tasks", "fds")),
)
"""The page's sections: anchor, heading, chart keys in order."""


def build_charts(run: RunData, colors: dict[str, str] | None = None) -> list[Chart]:
    """Every chart of a run's report, in page order (SECTIONS)."""
    ctx = ChartContext.of(run, colors)
    built = {
        chart.key: chart
        for chart in (
            *(process_chart(ctx, key) for key in ("memory", "traced", "buffer", "cpu", "tasks", "fds")),
            orphans_chart(ctx),
            streams_chart(ctx),
            tokens_chart(ctx),
            latency_chart(ctx),
            percentile_chart(ctx, "ttft_s"),
            percentile_chart(ctx, "token_gap_s"),
            timing_chart(ctx),
        )
    }
    return [built[key] for _, _, keys in SECTIONS for key in keys]


def comparison_colors(runs: Sequence[tuple[str, RunData]]) -> dict[str, str]:
    """Target colours of a comparison: the union of the runs' targets, in the first run's order."""
    return target_colors((t.name, t.role) for _, run in runs for t in run.targets)


def comparison_memory_chart(runs: Sequence[tuple[str, RunData]]) -> Chart:
    """Memory of every target of every run, each run's time from its own start; a dash per run."""
    title = "Server memory (RSS) of each run"
    look = (
        "Lines of the same target (one colour) should overlap when nothing changed; a target that climbs in one run "
        "but not the other changed how it buffers."
    )
    colors = comparison_colors(runs)
    fig = go.Figure()
    dashes = ("solid", "dash", "dot", "dashdot")
    for run_index, (label, run) in enumerate(runs):
        ctx = ChartContext(run, colors)
        samples = run.samples.dropna(subset=["t", "rss_bytes"])
        for name in colors:
            rows = samples[samples["target"] == name].sort_values("t")
            if len(rows):
                fig.add_trace(
                    line(
                        ctx,
                        name,
                        ctx.relative(rows["t"]),
                        rows["rss_bytes"] / MIB,
                        label=f"{name} ({label})",
                        line={"dash": dashes[run_index % len(dashes)]},
                    )
                )
    if not fig.data:
        return Chart("memory", title, look, None, "No run has process samples.")
    time_chart(fig, ChartContext(runs[0][1], colors), "RSS (MiB)")  # the reference run's phases and events
    fig.update_layout(xaxis={"title": {"text": "seconds since each run's start (phases: the first run's)"}})
    return Chart("memory", title, look, fit_axes(fig))
