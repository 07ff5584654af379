"""The live page's charts: the report's charts for the data so far, from a folder still being written."""

from __future__ import annotations

import json
from pathlib import Path

from harness.report.charts import SECTIONS
from harness.report.live_page import LiveCharts, live_page
from harness.runfolder import RunFolder
from tests.runfolders import MIB, CraftedRun, flat, leak


def test_charts_of_a_run_still_going(tmp_path: Path) -> None:
    empty = RunFolder.create(tmp_path / "empty", "live")
    assert "no measurements yet" in json.loads(LiveCharts(empty.path).answer())["waiting"]
    empty.finish("interrupted")
    folder = CraftedRun(rss={"upstream": flat(), "eager": leak(MIB)}, roles={"upstream": "upstream"}, status="running")
    path = folder.write(tmp_path / "run")
    live = LiveCharts(path)
    answer = json.loads(live.answer())
    assert answer["status"] == "running"
    keys = [chart["key"] for chart in answer["charts"]]
    assert keys == [key for _, _, section in SECTIONS for key in section]
    memory = next(chart for chart in answer["charts"] if chart["key"] == "memory")
    assert [trace["legendgroup"] for trace in memory["figure"]["data"]] == ["upstream", "eager"]
    assert all("missing" in chart or "figure" in chart for chart in answer["charts"])
    assert live.answer() is live.answer()  # served from the cache between rebuilds
    assert "/stream-harness/charts" in live_page("/stream-harness/charts", "/stream-harness/data")
