"""The analysis: per-target figures and verdicts from a run folder alone, written to its ``summary.json``.

``analyse(folder)`` reads the folder (harness.analyse.run_data), computes each target's figures (metrics_memory,
metrics_upstream, metrics_cancellation, metrics_clients, the tracemalloc growth tables) and verdicts, writes
``summary.json`` next to the tables and returns the same dict. Times are seconds since the run's start unless a key
says ``_at`` (epoch seconds); sizes are bytes; shares are fractions (0.25 = 25%). A section that cannot be computed
is ``{"available": false, "reason": "..."}``.

summary.json
============

==============================================  =================================================================
key                                             meaning
==============================================  =================================================================
format                                          1
run.path / scenario / status                    the folder, meta.json's scenario and status
run.complete, run.incomplete_reason             false and one sentence when status is not ``complete``
run.started_at, run.duration_s                  start of the shared time axis (epoch s), its length
run.phases[]                                    name, start_s, end_s of each phase
run.windows                                     warmup_end_s, drain_start_s, drain_end_s, source ("phases" or
                                                which stand-in was used)
targets.<name>.role                             upstream | relay | server | unknown
targets.<name>.memory.baseline_rss_bytes        median RSS over the last quarter of the warm-up
  .peak_rss_bytes, .peak_at_s                   highest RSS after the warm-up, and when
  .growth_bytes                                 peak - baseline
  .retained_growth_bytes                        median RSS over the last quarter of the drain - baseline
  .slope_bytes_per_s, .slope_low_bytes_per_s,   Theil-Sen growth rate over the load (warm-up end to drain start)
  .slope_high_bytes_per_s                       and its 95% confidence interval
  .trend_window_s, .trend_samples               the load window's length and samples
  .trend_growth_low_bytes                       slope_low × trend_window_s (growth even at the lower bound)
  .peak_clients, .held_per_client_bytes         most client streams open at once during the load; growth / that
  .peak_buffered_bytes                          the relay's own buffered_bytes at its highest (stats.csv), or null
targets.<name>.upstream.basis                   id:prompt|id:header|id:user|id:query|time order|aggregate
  .client_streams, .matched_streams             client streams of the target, and how many matched upstream
  .peak_upstream_streams, .peak_client_streams  most open at once
  .orphans_at_end                               upstream streams still open at the drain's end, client gone
  .orphan_stream_seconds                        total time upstream streams stayed open after their client left
  .upstream_open_at_end_kernel / _relay         ESTABLISHED connections to the upstream (connections.csv) and the
                                                relay's open_upstream_streams (stats.csv), last reading in drain
targets.<name>.cancellation.left_streams        matched streams the client left
  .closed, .never_closed, .upstream_ended_first upstream closed after the client left / never / before it left
  .latency_p50_ms .. latency_max_ms             client end -> upstream end, over closed streams
  .tokens_produced                              tokens the upstream sent on the target's matched streams
  .tokens_after_leave, _share                   estimated tokens produced after the client left; / produced
  .undelivered_tokens, .undelivered_share       tokens sent on left streams that their client never read
targets.<name>.clients.streams, .outcomes       client streams, and counts by outcome
  .ttfb / .ttft / .token_gap                    {count, p50_ms, p95_ms, p99_ms, max_ms}; token_gap is the mean
                                                gap of each completed stream
  .tokens_delivered, .bytes_delivered, .errors  read by clients; streams broken or failed
targets.<name>.tracemalloc                      traced_before_bytes, traced_after_bytes, snapshot_diff_bytes,
                                                sites[] (rank, size_diff_bytes, count_diff, site, code),
                                                held[] (container, leaf, bytes_diff, held_by), keepers[]
targets.<name>.traced_memory                    the same figures as memory, named *_traced_* instead of *_rss_*,
                                                from samples.csv traced_bytes (targets under the tracemalloc probe)
targets.<name>.verdicts.back_pressure           {state: pass|warn|fail|n/a, reason: one sentence with figures};
                                                from traced_memory when present (snapshots inflate RSS), else memory
targets.<name>.verdicts.cancellation            same
targets.<name>.headline                         the figures the report and ``harness compare`` put side by side
notes[]                                         sentences on what could not be computed and why
==============================================  =================================================================
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.analyse.attribution import attribute
from harness.analyse.cancellation import CancellationFigures, cancellation_figures, per_phase
from harness.analyse.clients import client_figures
from harness.analyse.excess import excess_series
from harness.analyse.growth import TracemallocFiles
from harness.analyse.memory import MIN_TREND_SAMPLES, MemoryFigures, memory_figures
from harness.analyse.run_data import RunData, load_run
from harness.analyse.upstream import UpstreamFigures, upstream_figures

__all__ = [
    "SUMMARY",
    "VerdictLimits",
    "analyse",
    "analyse_run",
    "back_pressure_verdict",
    "cancellation_verdict",
    "mib",
]

SUMMARY = "summary.json"
_MIB = float(1 << 20)


@dataclass(frozen=True, slots=True)
class VerdictLimits:
    """Where the report's verdicts turn warn and fail (the CI gate has its own, configurable limits)."""

    growth_warn_bytes: float = 4 * _MIB
    growth_fail_bytes: float = 16 * _MIB
    """RSS growth over the baseline, judged only when the Theil-Sen lower bound is above zero."""
    latency_warn_ms: float = 500.0
    latency_fail_ms: float = 2000.0
    after_leave_warn_share: float = 0.05
    after_leave_fail_share: float = 0.20


def mib(size: float | None) -> str:
    return "n/a" if size is None else f"{size / _MIB:.1f} MiB"


def _slow_readers(run: RunData, target: str) -> int:
    behaviour = run.clients.loc[run.clients["target"] == target, "behaviour"].astype(str)
    return int(behaviour.str.contains("paced|stall", regex=True).sum())


def back_pressure_verdict(
    memory: MemoryFigures | None, slow_readers: int, limits: VerdictLimits, measure: str = "RSS"
) -> dict[str, str]:
    """pass/warn/fail on memory growth under slow readers, with the sentence that says why.

    ``measure`` names the series the figures come from: "RSS", or "traced memory" for a profiled target.
    """
    if memory is None:
        return {"state": "n/a", "reason": "no memory samples for this target"}
    trend = ""
    rising = False
    if memory.slope_low_bytes_per_s is not None and memory.slope_bytes_per_s is not None:
        rising = memory.slope_low_bytes_per_s > 0
        trend = (
            f"; trend {mib(memory.slope_bytes_per_s)}/s "
            f"(95% CI {mib(memory.slope_low_bytes_per_s)} to {mib(memory.slope_high_bytes_per_s)}/s)"
        )
    per_client = f"; {mib(memory.held_per_client_bytes)} per client at the peak" if memory.held_per_client_bytes else ""
    figures = (
        f"{measure} grew {mib(memory.growth_bytes)} over its {mib(memory.baseline_rss_bytes)} baseline"
        f"{trend}{per_client}"
    )
    if not slow_readers:
        return {"state": "n/a", "reason": f"no slow or stalled readers in this run ({figures})"}
    if rising and memory.growth_bytes >= limits.growth_fail_bytes:
        state = "fail"
    elif (rising and memory.growth_bytes >= limits.growth_warn_bytes) or (
        memory.retained_growth_bytes is not None and memory.retained_growth_bytes >= limits.growth_fail_bytes
    ):
        state = "warn"
    else:
        state = "pass"
    return {"state": state, "reason": f"{figures}, with {slow_readers} slow-reader streams"}


def cancellation_verdict(
    upstream: UpstreamFigures | None, cancel: CancellationFigures | None, limits: VerdictLimits
) -> dict[str, str]:
    """pass/warn/fail on upstream streams outliving their clients, with the sentence that says why."""
    if upstream is None:
        return {"state": "n/a", "reason": "not a relay: it has no upstream to cancel"}
    if upstream.never_opened:
        return {"state": "n/a", "reason": upstream.note}
    if upstream.basis == "aggregate" or cancel is None:
        excess = upstream.excess
        if excess is None:
            return {"state": "n/a", "reason": f"no upstream counts of its own: {upstream.note}"}
        longest_ms = excess.longest_s * 1000
        failed = excess.at_end > 0 or longest_ms > limits.latency_fail_ms
        state = "fail" if failed else "warn" if longest_ms > limits.latency_warn_ms else "pass"
        return {
            "state": state,
            "reason": f"upstream streams beyond connected clients for {longest_ms:.0f} ms at the longest "
            f"(peak {excess.peak}, {excess.stream_seconds:.1f} orphan stream-seconds, {excess.at_end} at the end; "
            f"basis aggregate: {upstream.note})",
        }
    if cancel.left_streams == 0:
        return {"state": "n/a", "reason": "no client left a stream early in this run"}
    p99 = cancel.latency_p99_ms
    share = cancel.tokens_after_leave_share or 0.0
    orphans = upstream.orphans_at_end or 0
    parts = [
        f"{orphans} orphan upstream streams at the end of the drain",
        f"{cancel.never_closed} of {cancel.left_streams} left streams never closed upstream",
        f"p99 {p99:.0f} ms from client leaving to upstream closing" if p99 is not None else "no latency measured",
        f"{cancel.tokens_after_leave:.0f} tokens ({share:.1%}) produced after clients left",
    ]
    if (
        orphans > 0
        or cancel.never_closed > 0
        or (p99 is not None and p99 > limits.latency_fail_ms)
        or share > limits.after_leave_fail_share
    ):
        state = "fail"
    elif (p99 is not None and p99 > limits.latency_warn_ms) or share > limits.after_leave_warn_share:
        state = "warn"
    else:
        state = "pass"
    return {"state": state, "reason": "; ".join(parts)}


def _tracemalloc(path: Path, target: str) -> dict[str, Any]:
    files = TracemallocFiles(path / "tracemalloc", target)
    if not files.summary.is_file():
        return {
            "available": False,
            "reason": f"profiling was off for {target} (no tracemalloc/{files.summary.name})",
        }
    try:
        growth = json.loads(files.summary.read_text())
    except (OSError, ValueError) as error:
        return {"available": False, "reason": f"tracemalloc/{files.summary.name} is unreadable: {error}"}
    return {
        "available": True,
        "traced_before_bytes": growth.get("traced_before_bytes"),
        "traced_after_bytes": growth.get("traced_after_bytes"),
        "snapshot_diff_bytes": growth.get("snapshot_diff_bytes"),
        "sites": [
            {key: site.get(key) for key in ("rank", "size_diff_bytes", "count_diff", "site", "code")}
            for site in growth.get("sites", [])[:10]
        ],
        "held": [
            {
                "container": row.get("container"),
                "leaf": row.get("leaf"),
                "bytes_diff": row.get("bytes_diff"),
                "held_by": (row.get("held_by") or [""])[0],
            }
            for row in growth.get("held", [])[:10]
        ],
        "keepers": list(growth.get("keepers", [])),
    }


def _section(figures: Any, reason: str) -> dict[str, Any]:
    if figures is None:
        return {"available": False, "reason": reason}
    return {"available": True, **asdict(figures)}


def _peak_buffered(run: RunData, target: str) -> float | None:
    values = run.stats.loc[run.stats["target"] == target, "buffered_bytes"].dropna()
    return float(values.max()) if len(values) else None


def _analyse_target(run: RunData, name: str, role: str, limits: VerdictLimits) -> dict[str, Any]:
    clients = run.clients[run.clients["target"] == name]
    samples = run.samples[run.samples["target"] == name]
    memory = memory_figures(samples, run.windows, clients)
    memory_section = _section(memory, f"no RSS samples for {name} (samples.csv has none: not sampled or remote)")
    if memory is not None:
        memory_section["peak_buffered_bytes"] = _peak_buffered(run, name)
    # Under the tracemalloc probe, RSS also holds the snapshots' own high-water mark (RSS never shrinks back):
    # the back-pressure verdict then rests on traced memory, the Python heap in use, which snapshots leave alone.
    traced = memory_figures(samples, run.windows, clients, column="traced_bytes")
    if traced is not None and traced.samples < MIN_TREND_SAMPLES:
        traced = None
    traced_section = _section(
        traced, f"{name} did not run under the tracemalloc probe (no traced_bytes in samples.csv)"
    )
    traced_section = {key.replace("_rss_", "_traced_"): value for key, value in traced_section.items()}
    upstream: UpstreamFigures | None = None
    cancel: CancellationFigures | None = None
    is_relay = role == "relay" or (role == "unknown" and len(clients) > 0)
    phases: list[Any] = []
    if is_relay:
        attribution = attribute(run, name)
        upstream = upstream_figures(run, name, attribution)
        if upstream.basis != "aggregate":
            cancel = cancellation_figures(attribution.matched, run.windows.end)
        series = excess_series(run, name, attribution.upstream)
        phases = [asdict(phase) for phase in per_phase(attribution.matched, run.windows.end, run.phases, series)]
    not_relay = f"{name} is the {role}, not a relay" if role != "unknown" else f"{name} has no client streams"
    cancel_reason = not_relay if upstream is None else upstream.note
    verdicts = {
        "back_pressure": back_pressure_verdict(memory, _slow_readers(run, name), limits)
        if traced is None
        else back_pressure_verdict(traced, _slow_readers(run, name), limits, measure="traced memory"),
        "cancellation": cancellation_verdict(upstream, cancel, limits),
    }
    client = client_figures(clients) if len(clients) else None
    result = {
        "role": role,
        "memory": memory_section,
        "traced_memory": traced_section,
        "upstream": _section(upstream, not_relay),
        "cancellation": _section(cancel, cancel_reason),
        "cancellation_phases": phases,
        "clients": _section(client, f"no client streams were recorded for {name}"),
        "tracemalloc": _tracemalloc(run.path, name),
        "verdicts": verdicts,
    }
    result["headline"] = _headline(memory, upstream, cancel, client)
    return result


def _headline(memory: Any, upstream: Any, cancel: Any, client: Any) -> dict[str, float | None]:
    return {
        "growth_bytes": memory.growth_bytes if memory else None,
        "retained_growth_bytes": memory.retained_growth_bytes if memory else None,
        "slope_low_bytes_per_s": memory.slope_low_bytes_per_s if memory else None,
        "held_per_client_bytes": memory.held_per_client_bytes if memory else None,
        "orphans_at_end": upstream.orphans_at_end if upstream else None,
        "orphan_stream_seconds": upstream.orphan_stream_seconds if upstream else None,
        "cancel_latency_p99_ms": cancel.latency_p99_ms if cancel else None,
        "tokens_after_leave_share": cancel.tokens_after_leave_share if cancel else None,
        "ttft_p95_ms": client.ttft.p95_ms if client and client.ttft else None,
    }


def _clean(value: Any) -> Any:
    """JSON-ready: NaN/inf -> None, numpy scalars -> Python, floats rounded to 6 decimals."""
    if isinstance(value, dict):
        return {str(key): _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 6)
    return value


def analyse_run(run: RunData, limits: VerdictLimits | None = None) -> dict[str, Any]:
    """The summary of a loaded run (nothing written)."""
    limits = limits or VerdictLimits()
    windows = run.windows
    notes = []
    if run.incomplete:
        notes.append(f"incomplete run: {run.incomplete_reason}; figures cover what was measured")
    if windows.source != "phases":
        notes.append(windows.source)
    if run.samples.empty:
        notes.append("samples.csv has no rows: no memory figures")
    if run.clients.empty:
        notes.append("clients.csv has no rows: no client, upstream-matching or cancellation figures")
    if run.upstream_streams.empty and not run.clients.empty:
        notes.append("upstream_streams.csv has no rows: upstream figures fall back to aggregate counts")
    summary = {
        "format": 1,
        "run": {
            "path": str(run.path),
            "scenario": run.meta.get("scenario"),
            "status": run.status,
            "complete": not run.incomplete,
            "incomplete_reason": run.incomplete_reason,
            "started_at": windows.start,
            "duration_s": windows.end - windows.start,
            "phases": [
                {"name": p.name, "start_s": windows.relative(p.start), "end_s": windows.relative(p.end)}
                for p in run.phases
            ],
            "windows": {
                "warmup_end_s": windows.relative(windows.warmup_end),
                "drain_start_s": windows.relative(windows.drain_start),
                "drain_end_s": windows.relative(windows.drain_end),
                "source": windows.source,
            },
        },
        "targets": {info.name: _analyse_target(run, info.name, info.role, limits) for info in run.targets},
        "notes": notes,
    }
    cleaned: dict[str, Any] = _clean(summary)
    return cleaned


def analyse(folder: Path, limits: VerdictLimits | None = None) -> dict[str, Any]:
    """Analyse the run folder at ``folder``, write its summary.json and return the summary."""
    summary = analyse_run(load_run(folder), limits)
    aside = folder / f".{SUMMARY}.tmp"
    aside.write_text(json.dumps(summary, indent=2) + "\n")
    aside.replace(folder / SUMMARY)
    return summary


def clients_of(run: RunData, target: str) -> pd.DataFrame:
    """The client records of one target."""
    return run.clients[run.clients["target"] == target]
