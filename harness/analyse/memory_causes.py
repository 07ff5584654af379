"""Memory growth named by its cause: a backlog while slow readers are connected, or growth retained per request.

The run is cut into stretches by whether any slow or stalled reader of the target is connected (clients.csv
``behaviour`` paced or stalled); gaps shorter than ``_MERGE_GAP_S`` between two slow stretches belong to them.

- *Growth per request*: over the stretches after the warm-up with no slow reader connected and requests served,
  the growth of each (the Theil-Sen slope of the level against the requests started so far, times the requests
  started in it), summed, per 1,000 requests. No backlog can build there, so what grows is kept per request (or
  per connection).
- *Backlog under slow readers*: for each slow stretch, its highest level (rolling median) minus the level before
  the slow readers came (median of the last quarter of the stretch before), less what the requests served in
  between explain at the per-request rate; the largest over the stretches. Also per slow client at the peak, how
  much of it was released once they left, and whether it was still rising in the stretch's second half (the
  Theil-Sen slope's 95% lower bound): a bounded buffer fills and stops, a backlog grows for as long as they stay.

Levels are medians and rolling medians, so single spikes (a snapshot, a GC pause) move nothing. The series is
``rss_bytes`` or, for a target under the tracemalloc probe, ``traced_bytes`` (RSS never shrinks back; the traced
heap does, and snapshots do not inflate it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats  # type: ignore[import-untyped]

from harness.analyse.memory import open_at, thin
from harness.analyse.run_data import Windows

__all__ = ["SLOW_BEHAVIOUR", "BacklogFigures", "PerRequestFigures", "backlog_figures", "per_request_figures"]

SLOW_BEHAVIOUR = "paced|stall"
"""clients.csv ``behaviour`` of a slow or stalled reader."""
_MERGE_GAP_S = 2.0
_MIN_STRETCH_SAMPLES = 4
_ROLLING = 5
_QUARTER = 0.25


@dataclass(frozen=True, slots=True)
class PerRequestFigures:
    series: str
    requests: int
    """Requests started in the stretches measured (after the warm-up, no slow reader connected)."""
    stretches: int
    seconds: float
    """Their total length."""
    retained_bytes: float
    """Growth summed over those stretches (a fall is negative)."""
    per_1000_requests_bytes: float | None
    """retained_bytes per 1,000 of those requests; None without requests."""


@dataclass(frozen=True, slots=True)
class BacklogFigures:
    series: str
    slow_streams: int
    stretches: int
    before_bytes: float
    """Level before the slow readers of the deciding stretch connected."""
    held_bytes: float
    """Its highest level while they were connected, minus ``before_bytes``."""
    requests: int
    """Requests started between the stretch's start and its highest level."""
    explained_bytes: float
    """What those requests explain at the per-request rate (0 when that rate is not measured or not positive)."""
    backlog_bytes: float
    """held_bytes - explained_bytes: memory held for the slow readers."""
    peak_at_s: float
    peak_slow_clients: int
    held_per_slow_client_bytes: float | None
    released_bytes: float | None
    """How far the level fell once they left (level after the stretch vs its highest); None when nothing follows."""
    late_slope_low_bytes_per_s: float | None
    """95% lower bound of the Theil-Sen slope over the stretch's second half; None with too few samples."""
    rising_backlog_bytes: float
    """The largest backlog among the stretches whose second half still rose at ``rising_slope_low_bytes_per_s``
    (the slowest such rise), 0 when none rose: the judge confirms a growing backlog with it."""
    rising_slope_low_bytes_per_s: float | None
    rising_slope_per_slow_client_bytes_per_s: float | None
    """That slope per slow client connected at its peak: an unbounded buffer grows by about the upstream's rate for
    each, a bounded one not at all once full."""


@dataclass(frozen=True, slots=True)
class _Stretch:
    slow: bool
    frame: pd.DataFrame
    """Samples (t, value) of the stretch, by time."""

    @property
    def start(self) -> float:
        return float(self.frame["t"].iloc[0])

    @property
    def end(self) -> float:
        return float(self.frame["t"].iloc[-1])


def _quarter_median(frame: pd.DataFrame, last: bool) -> float:
    count = max(1, int(np.ceil(len(frame) * _QUARTER)))
    part = frame.tail(count) if last else frame.head(count)
    return float(part["value"].median())


def _slow_clients(clients: pd.DataFrame) -> pd.DataFrame:
    return clients[clients["behaviour"].astype(str).str.contains(SLOW_BEHAVIOUR, regex=True)]


def _stretches(series: pd.DataFrame, column: str, clients: pd.DataFrame) -> list[_Stretch]:
    frame = series.dropna(subset=["t", column]).sort_values("t")
    frame = pd.DataFrame({"t": frame["t"].to_numpy(dtype=float), "value": frame[column].to_numpy(dtype=float)})
    if frame.empty:
        return []
    slow = _slow_clients(clients)
    t = frame["t"].to_numpy()
    flags = open_at(slow["start"].to_numpy(dtype=float), slow["end"].to_numpy(dtype=float), t) > 0
    runs = np.concatenate([[0], np.cumsum(flags[1:] != flags[:-1])])
    groups = [(bool(flags[runs == run][0]), frame[runs == run]) for run in np.unique(runs)]
    merged: list[tuple[bool, pd.DataFrame]] = []
    for index, (is_slow, part) in enumerate(groups):
        short_gap = (
            not is_slow and 0 < index < len(groups) - 1 and float(part["t"].iloc[-1] - part["t"].iloc[0]) < _MERGE_GAP_S
        )
        if (is_slow or short_gap) and merged and merged[-1][0]:
            merged[-1] = (True, pd.concat([merged[-1][1], part]))
        else:
            merged.append((is_slow, part))
    return [_Stretch(is_slow, part.reset_index(drop=True)) for is_slow, part in merged]


def _started(clients: pd.DataFrame, start: float, end: float) -> int:
    starts = clients["start"].to_numpy(dtype=float)
    return int(np.sum((starts >= start) & (starts < end)))


def _slope_per_request(frame: pd.DataFrame, clients: pd.DataFrame) -> float:
    """Theil-Sen slope of the level against the requests started since the stretch began (bytes per request)."""
    starts = np.sort(clients["start"].to_numpy(dtype=float))
    t = frame["t"].to_numpy(dtype=float)
    served = np.searchsorted(starts, t, side="right") - np.searchsorted(starts, t[0], side="left")
    x, y = thin(served.astype(float), frame["value"].to_numpy(dtype=float))
    if len(np.unique(x)) < 2:
        return 0.0
    return float(stats.theilslopes(y, x).slope)


def _late_slope_low(frame: pd.DataFrame) -> float | None:
    half = frame[frame["t"] >= (frame["t"].iloc[0] + frame["t"].iloc[-1]) / 2]
    if len(half) < _MIN_STRETCH_SAMPLES or half["t"].nunique() < 2:
        return None
    t, y = thin(half["t"].to_numpy(dtype=float), half["value"].to_numpy(dtype=float))
    return float(stats.theilslopes(y, t - t[0], alpha=0.95).low_slope)


def per_request_figures(
    series: pd.DataFrame, windows: Windows, clients: pd.DataFrame, column: str = "rss_bytes"
) -> PerRequestFigures | None:
    """Growth per 1,000 requests where no slow reader is connected; None without samples of ``column``."""
    if column not in series.columns or series[column].dropna().empty:
        return None
    after = series[series["t"] >= windows.warmup_end]
    requests = stretches = 0
    seconds = retained = 0.0
    for stretch in _stretches(after, column, clients):
        if stretch.slow or len(stretch.frame) < _MIN_STRETCH_SAMPLES:
            continue
        served = _started(clients, stretch.start, stretch.end)
        if not served:
            continue
        requests += served
        stretches += 1
        seconds += stretch.end - stretch.start
        retained += _slope_per_request(stretch.frame, clients) * served
    per_1000 = retained / requests * 1000.0 if requests else None
    return PerRequestFigures(column, requests, stretches, seconds, retained, per_1000)


def backlog_figures(
    series: pd.DataFrame,
    windows: Windows,
    clients: pd.DataFrame,
    per_request: PerRequestFigures | None,
    column: str = "rss_bytes",
) -> BacklogFigures | None:
    """The largest backlog over the slow stretches; None without samples or without a slow reader."""
    if column not in series.columns or series[column].dropna().empty or _slow_clients(clients).empty:
        return None
    stretches = _stretches(series, column, clients)
    rate = 0.0
    if per_request is not None and per_request.per_1000_requests_bytes is not None:
        rate = max(0.0, per_request.per_1000_requests_bytes / 1000.0)
    slow = _slow_clients(clients)
    best: BacklogFigures | None = None
    found: list[BacklogFigures] = []
    count = sum(stretch.slow for stretch in stretches)
    for index, stretch in enumerate(stretches):
        if not stretch.slow:
            continue
        before_frame = stretches[index - 1].frame if index else stretch.frame.head(1)
        before = _quarter_median(before_frame, last=True)
        rolling = stretch.frame["value"].rolling(_ROLLING, center=True, min_periods=1).median()
        position = int(np.argmax(rolling.to_numpy()))
        highest = float(rolling.iloc[position])
        peak_t = float(stretch.frame["t"].iloc[position])
        requests = _started(clients, stretch.start, peak_t)
        explained = rate * requests
        grid = stretch.frame["t"].to_numpy()
        connected = open_at(slow["start"].to_numpy(dtype=float), slow["end"].to_numpy(dtype=float), grid)
        peak_slow = int(connected.max()) if len(connected) else 0
        released = None
        if index + 1 < len(stretches):
            released = _quarter_median(stretches[index + 1].frame, last=True) - highest
        held = highest - before
        figures = BacklogFigures(
            series=column,
            slow_streams=len(slow),
            stretches=count,
            before_bytes=before,
            held_bytes=held,
            requests=requests,
            explained_bytes=explained,
            backlog_bytes=held - explained,
            peak_at_s=windows.relative(peak_t),
            peak_slow_clients=peak_slow,
            held_per_slow_client_bytes=(held - explained) / peak_slow if peak_slow else None,
            released_bytes=released,
            late_slope_low_bytes_per_s=_late_slope_low(stretch.frame),
            rising_backlog_bytes=0.0,
            rising_slope_low_bytes_per_s=None,
            rising_slope_per_slow_client_bytes_per_s=None,
        )
        found.append(figures)
        if best is None or figures.backlog_bytes > best.backlog_bytes:
            best = figures
    if best is None:
        return None
    rising = [f for f in found if f.late_slope_low_bytes_per_s is not None and f.late_slope_low_bytes_per_s > 0]
    if not rising:
        return best

    def per_client(figures: BacklogFigures) -> float:
        return (figures.late_slope_low_bytes_per_s or 0.0) / max(1, figures.peak_slow_clients)

    top = max(rising, key=lambda f: (per_client(f), f.backlog_bytes))
    return replace(
        best,
        rising_backlog_bytes=top.backlog_bytes,
        rising_slope_low_bytes_per_s=top.late_slope_low_bytes_per_s,
        rising_slope_per_slow_client_bytes_per_s=per_client(top),
    )
