"""What the terminal shows of the harness while a run goes, and its verdicts at the end.

- each phase's start: its name, number, length and the time left in the scenario;
- every SUMMARY_INTERVAL_S, one line per target: memory and its growth, the relay's own buffer, upstream streams
  against connected clients (the Server side tab's figures, harness.report.live_view), only where Locust prints its
  own periodic stats (headless or ``--print-stats``, not ``--only-summary``);
- at the end of every run (each test, in the web UI) the verdict table, one line per check with its deciding figure
  and limit (harness.judge.verdict_lines, contract 8); with ``--gate`` the gate prints the same lines itself.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

import gevent

from harness.report.live_view import LiveData
from harness.runfolder import RunFolder

__all__ = ["SUMMARY_INTERVAL_S", "Terminal"]

SUMMARY_INTERVAL_S = 5.0
PREFIX = "[harness]"


class Terminal:
    """The harness's lines on the terminal of one Locust master (or local) process."""

    def __init__(self, environment: Any, folder: Callable[[], RunFolder | None], out: TextIO | None = None) -> None:
        self.environment = environment
        self._folder = folder
        self._out = out
        options = environment.parsed_options
        self.periodic = not getattr(options, "only_summary", False) and bool(
            getattr(options, "headless", False) or getattr(options, "print_stats", False)
        )
        self._live: LiveData | None = None

    def _print(self, line: str) -> None:
        out = self._out or sys.stdout
        out.write(f"{PREFIX} {line}\n")
        out.flush()

    def phase(self, name: str, index: int | None, duration_s: float | None) -> None:
        """A phase started: its name and length, and the time left in the scenario."""
        shape = getattr(self.environment, "shape_class", None)
        total = _call(shape, "total_s")
        elapsed = _call(shape, "get_run_time")
        count = len(getattr(shape, "phases", ()) or ())
        where = f" ({index + 1}/{count})" if index is not None and count else ""
        length = f" for {duration_s:.0f} s" if duration_s is not None else ""
        left = f"; {max(0.0, total - elapsed):.0f} s left in the scenario" if total and elapsed is not None else ""
        self._print(f"phase {name!r}{where} starts{length}{left}")

    def summary_lines(self) -> list[str]:
        """One line per target from the run folder's tables so far."""
        folder = self._folder()
        if folder is None:
            return []
        if self._live is None or self._live.folder.path != folder.path:
            self._live = LiveData(folder)
        self._live.refresh()
        lines = []
        for row in self._live.table_rows():
            parts = [f"RSS {row['rss']} ({row['growth']})" if row["rss"] else ""]
            if row["buffered"]:
                parts.append(f"own buffer {row['buffered']}")
            if row["clients"]:
                parts.append(f"upstream streams {row['upstream'] or '-'}, clients {row['clients']}")
            elif row["upstream"]:
                parts.append(f"open streams {row['upstream']}")
            if row["orphans"] and row["orphans"] != "0":
                parts.append(f"{row['orphans']} beyond the clients")
            text = ", ".join(part for part in parts if part)
            if text:
                lines.append(f"{row['target']}: {text}")
        return lines

    def loop(self) -> None:
        """Print the per-target lines every SUMMARY_INTERVAL_S while a test runs (a greenlet)."""
        while True:
            gevent.sleep(SUMMARY_INTERVAL_S)
            for line in self.summary_lines():
                self._print(line)

    def verdicts(self, folder: RunFolder) -> None:
        """The verdict table of the folder's summary.json (written with the report)."""
        from harness.judge import verdict_lines

        try:
            summary = json.loads((folder.path / "summary.json").read_text())
        except (OSError, ValueError) as error:
            self._print(f"no verdicts: summary.json unreadable ({error})")
            return
        self._print(f"verdicts of {folder.path.name}:")
        for line in verdict_lines(summary):
            self._print(line)


def _call(obj: Any, name: str) -> float | None:
    method = getattr(obj, name, None)
    if method is None:
        return None
    try:
        return float(method())
    except (TypeError, ValueError, AttributeError):
        return None
