"""Memory figures of one target from its RSS series: baseline after warm-up, peak, growth, retained growth, trend.

RSS is noisy and never shrinks back (freed memory stays with the process), so every figure is robust: the baseline
and the retained level are medians over a stretch, not single samples, and the growth rate is a Theil-Sen slope
(the median of the slopes between all pairs of samples) with its 95% confidence interval, taken over the load
(after the warm-up, before the drain). A gate should read the lower bound: above zero means the series rose
steadily, not by a spike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats  # type: ignore[import-untyped]

from harness.analyse.run_data import Windows

__all__ = ["MIN_TREND_SAMPLES", "MemoryFigures", "memory_figures", "open_at", "thin"]

MIN_TREND_SAMPLES = 5
"""Fewer samples in the load window than this: no trend is given."""
MAX_TREND_POINTS = 600
"""Longer series are thinned to this many time bins (median of each) before Theil-Sen, which is O(n²)."""
_STRETCH_SHARE = 0.25
"""The baseline is the median of the last quarter of the warm-up; the retained level, of the last quarter of the
drain."""


@dataclass(frozen=True, slots=True)
class MemoryFigures:
    samples: int
    baseline_rss_bytes: float
    """Median RSS over the last quarter of the warm-up (or of the first tenth of the run without one)."""
    peak_rss_bytes: float
    """Highest RSS after the warm-up."""
    peak_at_s: float
    """When the peak was sampled, in seconds since the start of the run."""
    growth_bytes: float
    """peak_rss_bytes - baseline_rss_bytes."""
    retained_growth_bytes: float | None
    """Median RSS over the last quarter of the drain, minus the baseline; None without drain samples."""
    slope_bytes_per_s: float | None
    """Theil-Sen growth rate over the load window; None with fewer than MIN_TREND_SAMPLES samples there."""
    slope_low_bytes_per_s: float | None
    slope_high_bytes_per_s: float | None
    """The slope's 95% confidence interval."""
    trend_window_s: float
    """Length of the load window the slope was fitted over."""
    trend_samples: int
    trend_growth_low_bytes: float | None
    """slope_low_bytes_per_s × trend_window_s: growth the trend shows even at its lower bound."""
    peak_clients: int
    """Most client streams of this target open at once during the load (clients.csv)."""
    held_per_client_bytes: float | None
    """growth_bytes / peak_clients: what each connected client cost at the peak; None without clients."""


def _stretch(frame: pd.DataFrame, start: float, end: float) -> pd.DataFrame:
    """Rows of the last quarter of [start, end] (the last row at or before ``end`` when that quarter is empty)."""
    tail = frame[(frame["t"] >= end - _STRETCH_SHARE * (end - start)) & (frame["t"] <= end)]
    if len(tail):
        return tail
    before = frame[frame["t"] <= end]
    return before.tail(1)


def thin(t: np.ndarray, y: np.ndarray, points: int = MAX_TREND_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``points`` (t, y) pairs: the medians of equal time bins, for long series."""
    if len(t) <= points:
        return t, y
    bins = np.linspace(t.min(), t.max(), points + 1)
    index = np.clip(np.searchsorted(bins, t, side="right") - 1, 0, points - 1)
    frame = pd.DataFrame({"bin": index, "t": t, "y": y}).groupby("bin").median()
    return frame["t"].to_numpy(), frame["y"].to_numpy()


def open_at(starts: np.ndarray, ends: np.ndarray, at: np.ndarray) -> np.ndarray:
    """How many intervals [start, end) contain each time in ``at``; an end of NaN means still open."""
    starts = np.sort(starts[~np.isnan(starts)])
    closed = np.sort(ends[~np.isnan(ends)])
    return np.searchsorted(starts, at, side="right") - np.searchsorted(closed, at, side="right")


def memory_figures(
    series: pd.DataFrame, windows: Windows, clients: pd.DataFrame | None = None, column: str = "rss_bytes"
) -> MemoryFigures | None:
    """Figures of one target's samples (columns ``t`` and ``column``); None without a single sample.

    ``clients``: that target's client records (``start``, ``end``), for the bytes held per client. ``column`` is
    ``rss_bytes`` or, for a target under the tracemalloc probe, ``traced_bytes`` (then the fields named ``*_rss_*``
    hold traced memory; ``analysis`` renames them).
    """
    if column not in series.columns:
        return None
    frame = series.dropna(subset=["t", column]).sort_values("t")
    if column != "rss_bytes":
        frame = frame.assign(rss_bytes=frame[column])
    if frame.empty:
        return None
    warm_start = min(windows.start, float(frame["t"].iloc[0]))
    baseline = float(_stretch(frame, warm_start, windows.warmup_end)["rss_bytes"].median())
    after = frame[frame["t"] >= windows.warmup_end]
    after = after if len(after) else frame.tail(1)
    position = int(np.argmax(after["rss_bytes"].to_numpy(dtype=float)))
    peak = float(after["rss_bytes"].iloc[position])
    peak_t = float(after["t"].iloc[position])
    drain = frame[(frame["t"] >= windows.drain_start) & (frame["t"] <= windows.drain_end)]
    retained = None
    if len(drain):
        retained = float(_stretch(drain, windows.drain_start, windows.drain_end)["rss_bytes"].median()) - baseline
    load = frame[(frame["t"] >= windows.warmup_end) & (frame["t"] < windows.drain_start)]
    slope = low = high = None
    if len(load) >= MIN_TREND_SAMPLES and load["t"].nunique() >= 2:
        t, y = thin(load["t"].to_numpy(dtype=float), load["rss_bytes"].to_numpy(dtype=float))
        fit = stats.theilslopes(y, t - t[0], alpha=0.95)
        slope, low, high = float(fit.slope), float(fit.low_slope), float(fit.high_slope)
    window_s = max(0.0, windows.drain_start - windows.warmup_end)
    peak_clients = 0
    if clients is not None and len(clients):
        at = load["t"].to_numpy(dtype=float) if len(load) else after["t"].to_numpy(dtype=float)
        counts = open_at(clients["start"].to_numpy(dtype=float), clients["end"].to_numpy(dtype=float), at)
        peak_clients = int(counts.max()) if len(counts) else 0
    growth = peak - baseline
    return MemoryFigures(
        samples=len(frame),
        baseline_rss_bytes=baseline,
        peak_rss_bytes=peak,
        peak_at_s=windows.relative(peak_t),
        growth_bytes=growth,
        retained_growth_bytes=retained,
        slope_bytes_per_s=slope,
        slope_low_bytes_per_s=low,
        slope_high_bytes_per_s=high,
        trend_window_s=window_s,
        trend_samples=len(load),
        trend_growth_low_bytes=None if low is None else low * window_s,
        peak_clients=peak_clients,
        held_per_client_bytes=growth / peak_clients if peak_clients else None,
    )
