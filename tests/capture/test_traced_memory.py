"""The per-tick traced memory of probed targets, against a real probe: readings into the rows, one warning when a
probe stops answering (here: its process stopped with SIGSTOP) and one when it answers again."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pandas as pd

from harness.capture.traced_memory import TracedPoller
from harness.runfolder import RunFolder
from tests.support import probed_program


def _tick(poller: TracedPoller, t: float, rows: list[dict[str, object]], timeout_s: float = 0.5) -> None:
    poller.merge(t, rows, poller.begin(skip=frozenset()), time.monotonic() + timeout_s)


def test_readings_land_in_the_rows_and_a_stopped_probe_warns_once_then_recovers(
    tmp_path: Path, folder: RunFolder
) -> None:
    with probed_program(tmp_path) as (client, _, child):
        poller = TracedPoller({"grower": client}, timeout_s=0.5, folder=folder)
        try:
            rows: list[dict[str, object]] = [{"t": 1.0, "target": "grower", "rss_bytes": 1}]
            _tick(poller, 1.0, rows)
            assert rows[0]["traced_bytes"] > 0  # type: ignore[operator]
            assert rows[0]["traced_peak_bytes"] >= rows[0]["traced_bytes"]  # type: ignore[operator]
            os.kill(child.pid, signal.SIGSTOP)
            try:
                for t in (2.0, 3.0, 4.0):  # the first times out; the next find it still unanswered
                    stalled: list[dict[str, object]] = []
                    _tick(poller, t, stalled)
                    assert stalled == []
            finally:
                os.kill(child.pid, signal.SIGCONT)
            time.sleep(0.5)  # the unanswered request gets its answer
            alone: list[dict[str, object]] = []  # a probed target whose process is not sampled here
            _tick(poller, 5.0, alone, timeout_s=5.0)
            assert alone[0]["target"] == "grower"
            assert alone[0]["traced_bytes"] > 0  # type: ignore[operator]
        finally:
            poller.close()
    events = pd.read_csv(folder.file("events"))
    warnings = events.query("kind == 'sampler_warning' and name == 'probe'")
    assert list(warnings["t"]) == [2.0, 5.0], warnings
    assert "tracemalloc probe of grower did not answer: no answer within the tick" in warnings["detail"].iloc[0]
    assert warnings["detail"].iloc[1] == "tracemalloc probe of grower answers again"
