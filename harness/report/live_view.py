"""The live view's content in Locust's web UI: server memory and upstream streams while a test runs.

Fed from the run folder's tables as the sampler appends them (capture and display meet at the run folder here too):

- the **"Server side" tab**'s rows (Locust's ``extended_tabs``: a table refreshed with Locust's stats poll): per
  target, RSS and its growth since the first sample, the relay's own buffered bytes, upstream streams open, client
  streams open, and upstream streams beyond the client streams (orphans);
- the time series of the **chart page** at ``/stream-harness/live`` (harness.report.live_page draws them).

The routes, the links and the tabs' installation are harness.plugin.web_ui's.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from harness.runfolder import RunFolder

__all__ = ["CHARTS_PATH", "DATA_PATH", "LIVE_PATH", "TABLE_STRUCTURE", "TAB_KEY", "CsvTail", "LiveData"]

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

    def table_rows(self) -> list[dict[str, Any]]:
        """Rows of the 'Server side' tab (the links to the chart page and the reports are in the web UI's
        Download Data tab: harness.plugin.web_ui)."""
        rows: list[dict[str, Any]] = []
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


TABLE_STRUCTURE = [
    {"key": "target", "title": "Target"},
    {"key": "rss", "title": "RSS"},
    {"key": "growth", "title": "RSS growth"},
    {"key": "buffered", "title": "Own buffer"},
    {"key": "upstream", "title": "Upstream streams"},
    {"key": "clients", "title": "Client streams"},
    {"key": "orphans", "title": "Upstream beyond clients"},
]
