"""The live view in Locust's web UI: server memory and upstream streams while a test runs, then the report.

Two parts, both fed from the run folder's tables as the sampler appends them (capture and display meet at the
run folder here too):

- a **"Server side" tab** in Locust's own UI (Locust's ``extended_tabs``: a table refreshed with Locust's stats
  poll): per target, RSS and its growth since the first sample, the relay's own buffered bytes, upstream streams
  open, client streams open, and upstream streams beyond the client streams (orphans); its first row gives the
  address of the chart page and, once a test stopped, of its report;
- a **chart page** at ``/stream-harness/live``: the report's own charts for the data so far (harness.report.live_page,
  from ``/stream-harness/charts``), redrawn every three seconds, with plotly served from the installed package (no
  network needed); after the test stops it links to ``/stream-harness/report``, which serves the run's report.html.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.report.live_page import LiveCharts, live_page
from harness.runfolder import RunFolder

__all__ = ["CHARTS_PATH", "LIVE_PATH", "CsvTail", "LiveData", "install_live_view"]

LIVE_PATH = "/stream-harness/live"
CHARTS_PATH = "/stream-harness/charts"
DATA_PATH = "/stream-harness/data"
TAB_KEY = "stream-harness"
_MAX_POINTS = 4000
"""Per series kept in memory for the chart page; older points are thinned out."""


class CsvTail:
    """Reads the rows appended to a CSV file since the last call (complete lines only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._header: list[str] | None = None

    def new_rows(self) -> list[dict[str, str]]:
        try:
            with self.path.open("rb") as file:
                file.seek(self._offset)
                data = file.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1  # a half-written last line waits for the next call
        if end == 0:
            return []
        self._offset += end
        lines = data[:end].decode("utf-8", "replace")
        reader = csv.reader(io.StringIO(lines))
        rows = list(reader)
        if self._header is None and rows:
            self._header, rows = rows[0], rows[1:]
        header = self._header or []
        return [dict(zip(header, row, strict=False)) for row in rows]


def _number(text: str | None) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class LiveData:
    """The time series the live view shows, kept up to date from one run folder."""

    def __init__(self, folder: RunFolder) -> None:
        self.folder = folder
        self._samples = CsvTail(folder.file("samples"))
        self._stats = CsvTail(folder.file("stats"))
        self.series: dict[str, dict[str, list[tuple[float, float]]]] = {}
        """target -> series name (rss_bytes, buffered_bytes, upstream_open, clients_open) -> [(t, value)]."""
        self.start_t: float | None = None

    def _add(self, target: str, name: str, t: float, value: float) -> None:
        points = self.series.setdefault(target, {}).setdefault(name, [])
        points.append((t, value))
        if len(points) > _MAX_POINTS:
            del points[1:-1:2]  # keep the ends, halve the middle

    def refresh(self) -> None:
        """Read what the sampler appended since the last call."""
        for row in self._samples.new_rows():
            t, rss = _number(row.get("t")), _number(row.get("rss_bytes"))
            if t is None or rss is None:
                continue
            self.start_t = t if self.start_t is None else min(self.start_t, t)
            self._add(row["target"], "rss_bytes", t, rss)
        for row in self._stats.new_rows():
            t = _number(row.get("t"))
            if t is None or row.get("ok") != "1":
                continue
            for column, name in (
                ("buffered_bytes", "buffered_bytes"),
                ("open_upstream_streams", "upstream_open"),
                ("active_client_streams", "clients_open"),
                ("open_streams", "upstream_open"),
            ):
                value = _number(row.get(column))
                if value is not None:
                    self._add(row["target"], name, t, value)

    def latest(self, target: str, name: str) -> float | None:
        points = self.series.get(target, {}).get(name)
        return points[-1][1] if points else None

    def table_rows(self, report_url: str | None) -> list[dict[str, Any]]:
        """Rows of the 'Server side' tab."""
        rows: list[dict[str, Any]] = [
            {
                "target": "charts",
                "rss": f"open {LIVE_PATH}",
                "growth": "",
                "buffered": "",
                "upstream": "",
                "clients": "",
                "orphans": f"report: {report_url}" if report_url else "report: when the test stops",
            }
        ]
        for target in sorted(self.series):
            rss = self.series[target].get("rss_bytes", [])
            upstream, clients = self.latest(target, "upstream_open"), self.latest(target, "clients_open")
            buffered = self.latest(target, "buffered_bytes")
            rows.append(
                {
                    "target": target,
                    "rss": f"{rss[-1][1] / 2**20:.1f} MiB" if rss else "",
                    "growth": f"{(rss[-1][1] - rss[0][1]) / 2**20:+.1f} MiB" if rss else "",
                    "buffered": f"{buffered / 2**20:.2f} MiB" if buffered is not None else "",
                    "upstream": "" if upstream is None else f"{upstream:.0f}",
                    "clients": "" if clients is None else f"{clients:.0f}",
                    "orphans": "" if upstream is None or clients is None else f"{max(0.0, upstream - clients):.0f}",
                }
            )
        return rows

    def as_json(self, since: float) -> dict[str, Any]:
        """Points after ``since`` (epoch seconds), per target and series, times relative to the first sample."""
        start = self.start_t or 0.0
        return {
            "start": start,
            "series": {
                target: {
                    name: [[round(t - start, 3), value] for t, value in points if t > since]
                    for name, points in named.items()
                }
                for target, named in self.series.items()
            },
        }


_TABLE_STRUCTURE = [
    {"key": "target", "title": "Target"},
    {"key": "rss", "title": "RSS"},
    {"key": "growth", "title": "RSS growth"},
    {"key": "buffered", "title": "Own buffer"},
    {"key": "upstream", "title": "Upstream streams"},
    {"key": "clients", "title": "Client streams"},
    {"key": "orphans", "title": "Upstream beyond clients"},
]


def install_live_view(
    environment: Any,
    folder: Callable[[], RunFolder | None],
    report: Callable[[], Path | None],
) -> None:
    """Add the tab and the chart page to ``environment.web_ui`` (no-op when Locust runs headless).

    ``folder`` gives the current run folder (None before the first test starts); ``report`` the report.html of
    the last test that stopped, if any.
    """
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is None:
        return
    from flask import Response, request, send_file

    state: dict[str, LiveData] = {}
    state_charts: dict[str, LiveCharts] = {}

    def data() -> LiveData | None:
        current = folder()
        if current is None:
            return None
        live = state.get("live")
        if live is None or live.folder.path != current.path:
            live = state["live"] = LiveData(current)
        live.refresh()
        return live

    web_ui.template_args["extended_tabs"] = [{"title": "Server side", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [{"key": TAB_KEY, "structure": _TABLE_STRUCTURE}]

    @web_ui.app.after_request  # type: ignore[untyped-decorator]
    def add_server_side(response: Any) -> Any:
        # Locust's UI polls /stats/requests; its extended tabs read "extended_stats" from that answer.
        if request.path != "/stats/requests" or response.status_code != 200 or not response.is_json:
            return response
        live = data()
        report_path = report()
        rows = live.table_rows("/stream-harness/report" if report_path else None) if live else []
        payload = response.get_json()
        payload["extended_stats"] = [{"key": TAB_KEY, "data": rows}]
        response.set_data(json.dumps(payload))
        return response

    @web_ui.app.route(LIVE_PATH)  # type: ignore[untyped-decorator]
    def live_chart_page() -> Any:
        return Response(live_page(CHARTS_PATH, DATA_PATH), mimetype="text/html")

    @web_ui.app.route(CHARTS_PATH)  # type: ignore[untyped-decorator]
    def live_charts() -> Any:
        current = folder()
        if current is None:
            return Response(json.dumps({"charts": [], "waiting": "no test started yet"}), mimetype="application/json")
        charts = state_charts.get("charts")
        if charts is None or charts.folder != current.path:
            charts = state_charts["charts"] = LiveCharts(current.path)
        # Building the charts is CPU work (pandas, plotly): a native thread keeps the gevent loop, and so the users'
        # timestamps, running meanwhile.
        import gevent

        answer = gevent.get_hub().threadpool.spawn(charts.answer).get(timeout=60)
        return Response(answer, mimetype="application/json")

    @web_ui.app.route("/stream-harness/plotly.js")  # type: ignore[untyped-decorator]
    def plotly_js() -> Any:
        from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

        return Response(get_plotlyjs(), mimetype="application/javascript", headers={"Cache-Control": "max-age=3600"})

    @web_ui.app.route(DATA_PATH)  # type: ignore[untyped-decorator]
    def live_json() -> Any:
        try:
            since = float(request.args.get("since", "0"))
        except ValueError:
            return Response(json.dumps({"error": "since must be a number"}), status=400, mimetype="application/json")
        live = data()
        report_path = report()
        payload = live.as_json(since) if live else {"start": None, "series": {}}
        payload["report"] = "/stream-harness/report" if report_path else None
        return Response(json.dumps(payload), mimetype="application/json")

    @web_ui.app.route("/stream-harness/report")  # type: ignore[untyped-decorator]
    def report_page() -> Any:
        path = report()
        if path is None or not path.is_file():
            return Response("no report yet: it is written when a test stops", status=404, mimetype="text/plain")
        return send_file(path, mimetype="text/html")
