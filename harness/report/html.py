"""The self-contained HTML report of a run (``report.html``).

``write_report(folder)`` analyses the run folder (writing ``summary.json``), renders ``report.html`` next to it
and returns its path; the Locust plugin calls it at test stop and ``harness report RUN_DIR`` on demand. The page
needs no network: plotly's JavaScript is embedded once, the figures are inline JSON, links to the raw files are
relative. It opens with the verdicts: per target and check the state, the deciding figure against its limit, the
sentence; then the charts (harness.report.charts) with the figures' tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.analyse.run_data import RunData, load_run
from harness.judge.limits import Limits
from harness.judge.summary import SUMMARY, summarise
from harness.report.charts import SECTIONS, build_charts
from harness.report.formats import count, ms, rate, seconds, share, size, when
from harness.report.page import environment, figures, plotly_js, write_atomically
from harness.report.palette import target_colors
from harness.report.verdicts import RUN, checks_of, glance, state_class

__all__ = ["REPORT", "render_report", "write_report"]

REPORT = "report.html"

_Rows = Sequence[tuple[str, str, Callable[[Any], str]]]
_MEMORY_ROWS: _Rows = (
    ("baseline_rss_bytes", "baseline after warm-up", size),
    ("peak_rss_bytes", "peak", size),
    ("growth_bytes", "growth (peak - baseline)", size),
    ("retained_growth_bytes", "retained after the drain", size),
    ("slope_bytes_per_s", "Theil-Sen growth rate", rate),
    ("slope_low_bytes_per_s", "  lower 95% bound", rate),
    ("slope_high_bytes_per_s", "  upper 95% bound", rate),
    ("peak_clients", "client streams at once (peak)", count),
    ("held_per_client_bytes", "held per client at the peak", size),
    ("peak_buffered_bytes", "relay's own buffer at its peak", size),
)
_TRACED_ROWS: _Rows = tuple((key.replace("_rss_", "_traced_"), label, fmt) for key, label, fmt in _MEMORY_ROWS[:7])
_CANCEL_ROWS: _Rows = (
    ("left_streams", "streams the client left", count),
    ("never_closed", "upstream never closed", count),
    ("upstream_ended_first", "upstream had already ended", count),
    ("latency_p50_ms", "latency p50", ms),
    ("latency_p95_ms", "latency p95", ms),
    ("latency_p99_ms", "latency p99", ms),
    ("latency_max_ms", "latency max", ms),
    ("tokens_produced", "tokens produced upstream", count),
    ("tokens_after_leave", "tokens produced after clients left (est.)", count),
    ("tokens_after_leave_share", "  share of all tokens", share),
    ("undelivered_tokens", "tokens never read by a client that left", count),
)


def _rows(summary: dict[str, Any], names: Sequence[str], section: str, spec: _Rows) -> list[tuple[str, list[str]]]:
    sections = [summary["targets"][name].get(section, {}) for name in names]
    if not any(s.get("available") for s in sections):
        return []
    return [(label, [fmt(s.get(key)) if s.get("available") else "—" for s in sections]) for key, label, fmt in spec]


def _client_rows(summary: dict[str, Any], names: Sequence[str]) -> list[tuple[str, list[str]]]:
    sections = [summary["targets"][name]["clients"] for name in names]
    rows: list[tuple[str, list[str]]] = [
        ("streams", [count(s.get("streams")) for s in sections]),
        ("outcomes", [", ".join(f"{k} {v}" for k, v in (s.get("outcomes") or {}).items()) for s in sections]),
    ]
    for key, label in (("ttfb", "time to first byte"), ("ttft", "time to first token"), ("token_gap", "token gap")):
        rows += [
            (f"{label} {q}", [ms((s.get(key) or {}).get(f"{q}_ms")) for s in sections]) for q in ("p50", "p95", "p99")
        ]
    rows.append(("tokens delivered", [count(s.get("tokens_delivered")) for s in sections]))
    rows.append(("bytes delivered", [size(s.get("bytes_delivered")) for s in sections]))
    return rows


def _waves(summary: dict[str, Any], names: Sequence[str]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Cancellation per phase (targets.<name>.cancellation_phases): one row per phase, one cell per relay."""
    relays = [name for name in names if summary["targets"][name].get("cancellation_phases")]
    phases: dict[str, dict[str, str]] = {}
    for name in relays:
        for wave in summary["targets"][name]["cancellation_phases"]:
            excess = wave.get("excess") or {}
            left = wave.get("left_streams") or 0
            text = (
                f"{count(left)} left, p99 {ms(wave.get('latency_p99_ms'))}, "
                f"{count(wave.get('never_closed'))} never closed, {count(wave.get('tokens_after_leave'))} tokens after "
                f"leave; upstream beyond clients: peak {count(excess.get('peak'))}, "
                f"{seconds(excess.get('stream_seconds'))} stream-seconds"
                if left or excess.get("peak")
                else "no client left; no upstream stream beyond clients"
            )
            phases.setdefault(str(wave.get("phase")), {})[name] = text
    return relays, [(phase, [cells.get(name, "—") for name in relays]) for phase, cells in phases.items()]


def _settings(meta: dict[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = [
        (key, str(meta.get(key))) for key in ("scenario", "status", "host", "platform") if key in meta
    ]
    if meta.get("argv"):
        rows.append(("command", " ".join(str(part) for part in meta["argv"])))
    for key, value in sorted((meta.get("flags") or {}).items()):
        rows.append((f"flag {key}", str(value)))
    for key, value in sorted((meta.get("versions") or {}).items()):
        rows.append((f"version {key}", str(value)))
    sampler = meta.get("sampler") or {}
    keys = ("interval_s", "connections_method", "ticks", "overruns", "busy_percent_of_one_core")
    rows += [(f"sampler {key}", str(sampler[key])) for key in keys if key in sampler]
    rows += [
        (f"target {target.get('name')}", f"{target.get('role')} {target.get('url')} pid {target.get('pid')}")
        for target in meta.get("targets") or []
        if isinstance(target, dict)
    ]
    return rows


def _files(folder: Path) -> list[tuple[str, str]]:
    return [
        (path.relative_to(folder).as_posix(), size(path.stat().st_size))
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.name.startswith(".") and path.name != REPORT
    ]


def render_report(run: RunData, summary: dict[str, Any]) -> str:
    """The report page of an analysed run."""
    colors = target_colors((t.name, t.role) for t in run.targets)
    charts = build_charts(run, colors)
    by_key = {chart.key: chart for chart in charts}
    targets = summary["targets"]
    names = list(targets)
    checks = checks_of(summary)
    with_clients = [name for name in names if targets[name]["clients"].get("available")]
    run_info = summary["run"]
    return (
        environment()
        .get_template("report.html.j2")
        .render(
            plotly_js=plotly_js(),
            scenario=run_info.get("scenario") or run.path.name,
            folder_name=run.path.name,
            started=when(run_info.get("started_at")),
            duration=seconds(run_info.get("duration_s")),
            status=run_info.get("status"),
            incomplete=run_info.get("incomplete_reason"),
            notes=summary.get("notes", []),
            checks=[c for c in checks if c.target == RUN] + [c for c in checks if c.target != RUN],
            run_checks=[c for c in checks if c.target == RUN],
            glance=glance(checks),
            state_class=state_class,
            colors=colors,
            targets=targets,
            target_names=names,
            waves=_waves(summary, names),
            memory_rows=_rows(summary, names, "memory", _MEMORY_ROWS),
            traced_rows=_rows(summary, names, "traced_memory", _TRACED_ROWS),
            cancel_rows=_rows(summary, names, "cancellation", _CANCEL_ROWS),
            client_names=with_clients,
            client_rows=_client_rows(summary, with_clients),
            sections=[(anchor, heading, [by_key[key] for key in keys]) for anchor, heading, keys in SECTIONS],
            figures=figures(charts),
            settings=_settings(run.meta),
            files=_files(run.path),
        )
    )


def write_report(folder: Path, limits: Limits | None = None) -> Path:
    """Analyse and judge ``folder`` with ``limits`` (writing summary.json), write its report.html, return its path.

    RunFolderError when ``folder`` is not a run folder or holds no measurement; an interrupted run gets a
    report of what was measured, marked incomplete.
    """
    run = load_run(folder)
    summary = summarise(run, limits)
    write_atomically(folder / SUMMARY, json.dumps(summary, indent=2) + "\n")
    return write_atomically(folder / REPORT, render_report(run, summary))
