"""Charts of what the sampler read from each target's processes and stats: RSS, traced memory, CPU, the relay's
own buffer. One line per target, in the target's colour, on the run's time axis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go  # type: ignore[import-untyped]

from harness.analyse.run_data import RunData
from harness.report.chart_base import MIB, Chart, ChartContext, line, time_chart

__all__ = ["PROCESS_CHARTS", "process_chart"]


def _samples(run: RunData) -> pd.DataFrame:
    return run.samples


def _stats(run: RunData) -> pd.DataFrame:
    return run.stats[run.stats["ok"] == 1]


@dataclass(frozen=True, slots=True)
class _Spec:
    title: str
    look: str
    table: Callable[[RunData], pd.DataFrame]
    column: str
    scale: float
    y_title: str
    missing: str


PROCESS_CHARTS = {
    "memory": _Spec(
        "Server memory (RSS)",
        "A server that respects back-pressure stays flat after the warm-up; one that buffers for slow readers climbs "
        "while they are connected. Under the tracemalloc probe each snapshot (dotted line) raises RSS for good: the "
        "verdict of such a target rests on its traced memory, charted below.",
        _samples,
        "rss_bytes",
        MIB,
        "RSS (MiB)",
        "No process samples were recorded (samples.csv has no RSS).",
    ),
    "traced": _Spec(
        "Traced memory (tracemalloc, the Python heap in use)",
        "What the memory checks judge for targets under the probe: snapshots leave it alone, so a climb here is "
        "memory the server's own code holds.",
        _samples,
        "traced_bytes",
        MIB,
        "traced (MiB)",
        "No target ran under the tracemalloc probe (no traced_bytes).",
    ),
    "buffer": _Spec(
        "The relay's own buffer",
        "Bytes a relay holds for its clients (its /__harness/stats buffered_bytes): a relay that respects "
        "back-pressure keeps this near its high-water mark; one that buffers for slow readers lets it climb with "
        "every slow client.",
        _stats,
        "buffered_bytes",
        MIB,
        "buffered (MiB)",
        "No target reported buffered_bytes in its stats.",
    ),
    "cpu": _Spec(
        "CPU per target",
        "Percent of one core, summed over each target's processes. A relay near 100% is the bottleneck and its "
        "latencies say more about CPU than about its code; the tracemalloc probe costs CPU too.",
        _samples,
        "cpu_percent",
        1.0,
        "CPU (% of one core)",
        "No CPU readings (cpu_percent is blank in samples.csv).",
    ),
    "tasks": _Spec(
        "Asyncio tasks per target (under the probe)",
        "What the churn check counts per connection: a server that keeps a task per disconnected client climbs "
        "with every connect-and-leave cycle and never comes back down; a correct one returns to its idle count.",
        _samples,
        "asyncio_tasks",
        1.0,
        "asyncio tasks",
        "No target reported asyncio tasks (only Python targets under the probe do).",
    ),
    "fds": _Spec(
        "Open file descriptors per target",
        "Sockets and files each target holds, summed over its processes: a descriptor kept per closed connection "
        "climbs with every cycle.",
        _samples,
        "num_fds",
        1.0,
        "descriptors",
        "No descriptor counts (num_fds is blank in samples.csv).",
    ),
}
"""Chart key -> what it draws: a column of samples.csv or stats.csv, one line per target."""


def process_chart(ctx: ChartContext, key: str) -> Chart:
    spec = PROCESS_CHARTS[key]
    rows = spec.table(ctx.run).dropna(subset=["t", spec.column])
    fig = go.Figure()
    for name in ctx.colors:  # the run's order, so legends read the same in every chart
        mine = rows[rows["target"] == name].sort_values("t")
        if len(mine):
            fig.add_trace(line(ctx, name, ctx.relative(mine["t"]), mine[spec.column] / spec.scale))
    if not fig.data:
        return Chart(key, spec.title, spec.look, None, spec.missing)
    return Chart(key, spec.title, spec.look, time_chart(fig, ctx, spec.y_title))
