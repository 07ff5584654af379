"""The live chart page's content: the report's own charts (harness.report.charts) for the data so far, so the page
shows the same measures, colours and phase bands as the report will, one chart per measure and a line per target.

:class:`LiveCharts` rebuilds them from the run folder at most every few seconds (reading a folder mid-run is what
``load_run`` allows: the last phase is open, upstream per-stream records arrive at the stop) and hands the page one
JSON answer. Building takes 0.3-1 s of CPU for a 20 s run of the bundled stack (measured on the shared 2-core
machine), so it is done only while someone watches, and the web route (harness.plugin.web_ui) runs it in gevent's
thread pool, so Locust's users are not held up.
"""

from __future__ import annotations

import json
import threading
import time
from functools import cache
from pathlib import Path

from harness.analyse.run_data import load_run
from harness.errors import RunFolderError
from harness.report.charts import build_charts
from harness.report.page import environment

__all__ = ["LiveCharts", "live_page"]

_MIN_AGE_S = 2.0
"""Charts younger than this are served as they are; older ones are rebuilt (at least 4x the last build's time)."""


class LiveCharts:
    """The charts of one run folder, rebuilt on demand and cached."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._answer = json.dumps({"charts": [], "waiting": "no measurement yet"})
        self._built_at = 0.0
        self._build_s = 0.0

    def answer(self) -> str:
        """The JSON the page draws: ``charts`` [{key, title, look_for, figure | missing}], ``status``, ``build_s``."""
        with self._lock:
            if time.monotonic() - self._built_at >= max(_MIN_AGE_S, 4 * self._build_s):
                self._answer = self._build()
            return self._answer

    def _build(self) -> str:
        started = time.monotonic()
        try:
            run = load_run(self.folder)
        except RunFolderError as error:
            self._built_at = time.monotonic()
            return json.dumps({"charts": [], "waiting": str(error)})
        parts = []
        for chart in build_charts(run):
            head = json.dumps({"key": chart.key, "title": chart.title, "look_for": chart.look_for})[:-1]
            if chart.figure is None:
                parts.append(f'{head}, "missing": {json.dumps(chart.missing)}}}')
            else:
                parts.append(f'{head}, "figure": {chart.figure.to_json(validate=False, pretty=False)}}}')
        self._built_at = time.monotonic()
        self._build_s = self._built_at - started
        return f'{{"status": {json.dumps(run.status)}, "build_s": {self._build_s:.3f}, "charts": [{", ".join(parts)}]}}'


@cache
def live_page(charts_url: str, data_url: str) -> str:
    """The page: polls ``charts_url`` for the charts and ``data_url`` for the report link."""
    return environment().get_template("live.html.j2").render(charts_url=charts_url, data_url=data_url)
