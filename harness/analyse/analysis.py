"""The analysis: per-target figures from a run folder alone, the figures of its ``summary.json``.

``analyse_run(run)`` computes each target's figures (memory, memory_causes, upstream, cancellation, clients,
resources, stalled, the tracemalloc growth tables) and returns them; ``harness.judge.summarise`` adds the checks
and writes ``summary.json`` (analyse never judges). Times are seconds since the run's start unless a key
says ``_at`` (epoch seconds); sizes are bytes; shares are fractions (0.25 = 25%). A section that cannot be computed
is ``{"available": false, "reason": "..."}``.

summary.json
============

==============================================  =================================================================
key                                             meaning
==============================================  =================================================================
format                                          2
run.path / scenario / status                    the folder, meta.json's scenario and status
run.complete, run.incomplete_reason             false and one sentence when status is not ``complete``
run.drained                                     whether a drain phase ran (no client connected)
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
targets.<name>.cancellation.left_streams        matched streams the client left (not while a snapshot stalled it:
  .left_during_snapshots                        those are left out of every cancellation figure, and counted)
  .closed, .never_closed, .upstream_ended_first upstream closed after the client left / never / before it left
  .latency_p50_ms .. latency_max_ms             client end -> upstream end, over closed streams
  .tokens_produced                              tokens the upstream sent on the target's matched streams
  .tokens_after_leave, _share                   estimated tokens produced over 0.5 s after the client left; / all
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
targets.<name>.judged_series                    "traced_bytes" under the tracemalloc probe, else "rss_bytes": the
                                                series the memory checks are judged on (snapshots inflate RSS)
targets.<name>.per_request                      requests, stretches, seconds, retained_bytes, per_1000_requests_bytes:
                                                growth where no slow reader was connected (analyse/memory_causes.py)
targets.<name>.backlog                          slow_streams, before_bytes, held_bytes, requests, explained_bytes,
                                                backlog_bytes, peak_at_s, peak_slow_clients,
                                                held_per_slow_client_bytes, released_bytes
targets.<name>.churn                            phase, start_s, end_s, rounds, connections, resources[] (resource,
                                                levels, rises, kept, kept_per_1000_connections) (analyse/resources.py)
targets.<name>.stalled                          stalled_streams, judged_streams, window_s, hold_s, held_to_leave,
                                                dropped, cut_short (analyse/stalled.py)
targets.<name>.process.died, .died_at_s, .detail  a target_died event for the target (events.csv)
targets.<name>.headline                         the figures the report and ``harness compare`` put side by side
notes[]                                         sentences on what could not be computed and why
==============================================  =================================================================
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.analyse.attribution import attribute
from harness.analyse.cancellation import CancellationFigures, cancellation_figures, per_phase
from harness.analyse.clients import client_figures
from harness.analyse.excess import excess_series
from harness.analyse.growth import TracemallocFiles
from harness.analyse.memory import MIN_TREND_SAMPLES, memory_figures
from harness.analyse.memory_causes import backlog_figures, per_request_figures
from harness.analyse.resources import churn_figures, churn_phase
from harness.analyse.run_ahead import RunAhead, run_ahead
from harness.analyse.run_data import RunData
from harness.analyse.stalled import stalled_figures
from harness.analyse.upstream import UpstreamFigures, upstream_figures

__all__ = ["CHURN_ROUNDS", "STALLED_WINDOW_S", "SUMMARY", "analyse_run", "clients_of"]

SUMMARY = "summary.json"
CHURN_ROUNDS = 4
"""Rounds the churn phase is cut into (harness.judge.limits.Limits.churn_rounds passes its own)."""
STALLED_WINDOW_S = 12.0
"""A stalled client counts toward the stalled check only when it stayed at least this long."""


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


def _died(run: RunData, name: str) -> dict[str, Any]:
    rows = run.events[(run.events["kind"] == "target_died") & (run.events["name"] == name)]
    if rows.empty:
        return {"died": False, "died_at_s": None, "detail": ""}
    first = rows.sort_values("t").iloc[0]
    return {"died": True, "died_at_s": run.windows.relative(float(first["t"])), "detail": str(first["detail"])}


_STALL = re.compile(r"stalled ([0-9.]+) s")
_STALL_LEAD_S = 0.5
"""A client that left this shortly before a snapshot began is cancelled during the stall too."""


def _outside_snapshot_stalls(run: RunData, name: str, matched: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The pairs whose client did not leave while a tracemalloc snapshot stalled the target, and how many did.

    A snapshot holds the target's GIL for up to a second or more (events.csv ``tracemalloc_snapshot``: "the target
    stalled 1.2 s"): a client leaving then is cancelled late because of the instrument, not the server.
    """
    rows = run.events[(run.events["kind"] == "tracemalloc_snapshot") & (run.events["name"] == name)]
    if rows.empty or matched.empty:
        return matched, 0
    ends = matched["client_end"].to_numpy(dtype=float)
    inside = np.zeros(len(matched), dtype=bool)
    for t, detail in zip(rows["t"], rows["detail"], strict=True):
        found = _STALL.search(str(detail))
        stall = float(found.group(1)) if found else 1.0
        inside |= (ends >= float(t) - _STALL_LEAD_S) & (ends <= float(t) + stall)
    inside &= (matched["outcome"] == "left").to_numpy()
    return matched[~inside], int(inside.sum())


def _judged_series(samples: pd.DataFrame, run: RunData, clients: pd.DataFrame) -> tuple[str, Any, Any]:
    """RSS, or traced memory for a target under the probe (snapshots inflate RSS, never the traced heap)."""
    traced = memory_figures(samples, run.windows, clients, column="traced_bytes")
    if traced is not None and traced.samples >= MIN_TREND_SAMPLES:
        return "traced_bytes", traced, memory_figures(samples, run.windows, clients)
    return "rss_bytes", None, memory_figures(samples, run.windows, clients)


def _analyse_target(run: RunData, name: str, role: str, churn_rounds: int) -> dict[str, Any]:
    clients = run.clients[run.clients["target"] == name]
    samples = run.samples[run.samples["target"] == name]
    series, traced, memory = _judged_series(samples, run, clients)
    memory_section = _section(memory, f"no RSS samples for {name} (samples.csv has none: not sampled or remote)")
    if memory is not None:
        memory_section["peak_buffered_bytes"] = _peak_buffered(run, name)
    traced_section = _section(
        traced, f"{name} did not run under the tracemalloc probe (no traced_bytes in samples.csv)"
    )
    traced_section = {key.replace("_rss_", "_traced_"): value for key, value in traced_section.items()}
    per_request = per_request_figures(samples, run.windows, clients, column=series)
    backlog = backlog_figures(samples, run.windows, clients, per_request, column=series)
    upstream: UpstreamFigures | None = None
    cancel: CancellationFigures | None = None
    matched = pd.DataFrame()
    is_relay = role == "relay" or (role == "unknown" and len(clients) > 0)
    phases: list[Any] = []
    stalled_out = 0
    ahead: RunAhead | None = None
    ahead_reason = f"{name} is the {role}, not a relay"
    if is_relay:
        attribution = attribute(run, name)
        matched = attribution.matched
        upstream = upstream_figures(run, name, attribution)
        judged, stalled_out = _outside_snapshot_stalls(run, name, matched)
        if upstream.basis != "aggregate":
            cancel = cancellation_figures(judged, run.windows.end)
        excess = excess_series(run, name, attribution.upstream)
        phases = [asdict(phase) for phase in per_phase(judged, run.windows.end, run.phases, excess)]
        peak = None if backlog is None else run.windows.start + backlog.peak_at_s
        ahead = run_ahead(matched, at=peak)
        ahead_reason = f"no slow or stalled client stream of {name} paired with its upstream stream by an id"
    not_relay = f"{name} is the {role}, not a relay" if role != "unknown" else f"{name} has no client streams"
    cancel_reason = not_relay if upstream is None else upstream.note
    client = client_figures(clients) if len(clients) else None
    churn = churn_figures(run, name, churn_rounds)
    stalled = stalled_figures(clients, matched, STALLED_WINDOW_S) if len(clients) else None
    result = {
        "role": role,
        "process": _died(run, name),
        "judged_series": series,
        "memory": memory_section,
        "traced_memory": traced_section,
        "per_request": _section(per_request, f"no {series} samples for {name}"),
        "backlog": _section(
            backlog,
            f"no slow or stalled reader of {name} in this run" if memory is not None else f"no samples for {name}",
        ),
        "run_ahead": _section(ahead, ahead_reason),
        "upstream": _section(upstream, not_relay),
        "cancellation": {**_section(cancel, cancel_reason), "left_during_snapshots": stalled_out},
        "cancellation_phases": phases,
        "clients": _section(client, f"no client streams were recorded for {name}"),
        "churn": _section(churn, "no churn phase in this run" if churn_phase(run) is None else "no readings"),
        "stalled": _section(stalled, f"no client of {name} stalled in this run"),
        "tracemalloc": _tracemalloc(run.path, name),
    }
    result["headline"] = _headline(memory, upstream, cancel, client, backlog, per_request, churn, stalled)
    return result


def _headline(
    memory: Any, upstream: Any, cancel: Any, client: Any, backlog: Any, per_request: Any, churn: Any, stalled: Any
) -> dict[str, float | None]:
    kept = (
        [r.kept_per_1000_connections for r in churn.resources if r.kept_per_1000_connections is not None]
        if churn
        else []
    )
    return {
        "backlog_bytes": backlog.backlog_bytes if backlog else None,
        "retained_per_1000_requests_bytes": per_request.per_1000_requests_bytes if per_request else None,
        "kept_per_1000_connections": max(kept) if kept else None,
        "stalled_hold_s": stalled.hold_s if stalled else None,
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


def analyse_run(run: RunData, churn_rounds: int = CHURN_ROUNDS) -> dict[str, Any]:
    """The figures of a loaded run (nothing written): summary.json without its checks."""
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
        "format": 2,
        "run": {
            "path": str(run.path),
            "scenario": run.meta.get("scenario"),
            "status": run.status,
            "complete": not run.incomplete,
            "incomplete_reason": run.incomplete_reason,
            "drained": any("drain" in p.name.lower() and p.end > p.start for p in run.phases),
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
        "targets": {info.name: _analyse_target(run, info.name, info.role, churn_rounds) for info in run.targets},
        "notes": notes,
    }
    cleaned: dict[str, Any] = _clean(summary)
    return cleaned


def clients_of(run: RunData, target: str) -> pd.DataFrame:
    """The client records of one target."""
    return run.clients[run.clients["target"] == target]
