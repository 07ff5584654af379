"""Axes cover every data point (log axes too), and every time chart carries the phases and marked events."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go  # type: ignore[import-untyped]

from harness.analyse.run_data import load_run
from harness.report.chart_base import ChartContext, fit_axes, time_chart
from harness.runfolder import RunFolder
from tests.runfolders import T0, CraftedRun, flat


def test_axes_cover_all_data() -> None:
    fig = fit_axes(go.Figure([go.Scatter(x=[-2, 5], y=[3, 4000])]))
    low, high = fig.layout.yaxis.range
    assert low <= 0
    assert high >= 4000
    assert fig.layout.xaxis.range[0] <= -2
    log = go.Figure([go.Box(y=[0.01, 3900.0])])
    log.update_layout(yaxis={"type": "log"})
    low, high = fit_axes(log, x=False).layout.yaxis.range
    assert 10**low <= 0.01
    assert 10**high >= 3900


def test_time_charts_have_phase_bands_and_event_markers(tmp_path: Path) -> None:
    path = CraftedRun(rss={"lazy": flat()}, status="running").write(tmp_path)
    folder = RunFolder.open(path)
    folder.event("tracemalloc_snapshot", "lazy", "after-warmup", t=T0 + 10.0)
    folder.event("target_died", "lazy", "exit code -9", t=T0 + 30.0)
    folder.finish("interrupted")
    fig = time_chart(go.Figure([go.Scatter(x=[0, 50], y=[1, 2])]), ChartContext.of(load_run(path)), "MiB")
    bands = [shape for shape in fig.layout.shapes if shape.type == "rect"]
    lines = [shape for shape in fig.layout.shapes if shape.type == "line"]
    assert len(bands) == 3  # warm-up, load, drain
    assert sorted(shape.x0 for shape in lines) == [10.0, 30.0]
    assert {annotation.text for annotation in fig.layout.annotations} >= {"snapshot", "lazy died", "warm-up"}
