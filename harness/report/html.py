"""The self-contained HTML report of a run (``report.html``) and the side-by-side comparison of several runs.

``write_report(folder)`` analyses the run folder (writing ``summary.json``), renders ``report.html`` next to it
and returns its path; the Locust plugin calls it at test stop and ``harness report RUN_DIR`` on demand.
``write_comparison(folders, out)`` sets runs side by side. The pages need no network: plotly's JavaScript is
embedded once, the figures are inline JSON, and links to the raw files are relative.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

from harness.analyse.analysis import SUMMARY, analyse_run
from harness.analyse.run_data import RunData, load_run
from harness.report.charts import Chart, build_charts, comparison_memory_chart, figure_json

__all__ = ["COMPARE_TOLERANCE", "REPORT", "render_comparison", "render_report", "write_comparison", "write_report"]

REPORT = "report.html"
COMPARE_TOLERANCE = 0.10
"""A figure that moved more than this share against the first run is highlighted in a comparison."""
_CHECKS = (("back_pressure", "back-pressure"), ("cancellation", "cancellation"))


# -- formatting ---------------------------------------------------------------------------------------------------
def size(value: Any) -> str:
    """Bytes as B / KiB / MiB / GiB, signed when negative; "—" when missing."""
    if value is None:
        return "—"
    number = float(value)
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(number) >= scale:
            return f"{number / scale:.1f} {unit}"
    return f"{number:.0f} B"


def ms(value: Any) -> str:
    return "—" if value is None else f"{float(value):,.1f} ms"


def share(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1%}"


def count(value: Any) -> str:
    return "—" if value is None else f"{float(value):,.0f}"


def seconds(value: Any) -> str:
    return "—" if value is None else f"{float(value):,.1f} s"


def rate(value: Any) -> str:
    return "—" if value is None else f"{size(value)}/s"


_HEADLINE: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("growth_bytes", "RSS growth after warm-up", size),
    ("retained_growth_bytes", "RSS retained after the drain", size),
    ("slope_low_bytes_per_s", "growth rate, lower 95% bound", rate),
    ("held_per_client_bytes", "memory per client at the peak", size),
    ("orphans_at_end", "orphan upstream streams after the drain", count),
    ("orphan_stream_seconds", "orphan stream-seconds", seconds),
    ("cancel_latency_p99_ms", "cancellation latency p99", ms),
    ("tokens_after_leave_share", "tokens produced after clients left", share),
    ("ttft_p95_ms", "time to first token p95", ms),
)
"""Headline keys in summary.json, their labels and formats; all are 'lower is better'."""

_MEMORY_ROWS = (
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
_CANCEL_ROWS = (
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


def _rows(
    summary: dict[str, Any], names: Sequence[str], section: str, spec: Sequence[tuple[str, str, Callable[[Any], str]]]
) -> list[tuple[str, list[str]]]:
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


def _when(epoch: Any) -> str:
    if epoch is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(float(epoch)))


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


# -- rendering ----------------------------------------------------------------------------------------------------
@cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("harness.report", "templates"),
        autoescape=True,
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["size"] = size
    return environment


@cache
def _plotly_js() -> str:
    # Embedded once per page so the file opens offline; "</script" cannot occur in it unescaped.
    script: str = get_plotlyjs()
    return script.replace("</script", "<\\/script")


def _figures(charts: Sequence[Chart]) -> dict[str, str]:
    return {chart.key: figure_json(chart) for chart in charts if chart.figure is not None}


def render_report(run: RunData, summary: dict[str, Any]) -> str:
    """The report page of an analysed run."""
    charts = build_charts(run, summary)
    by_key = {chart.key: chart for chart in charts}
    targets = summary["targets"]
    names = list(targets)
    relays = [name for name in names if targets[name]["cancellation"].get("available")]
    with_clients = [name for name in names if targets[name]["clients"].get("available")]
    judged = [name for name in names if targets[name]["role"] != "upstream"] or names
    headline = [(label, [fmt(targets[name]["headline"].get(key)) for name in names]) for key, label, fmt in _HEADLINE]
    upstream_notes = {
        f"streams-{name}": targets[name]["upstream"].get("note", "")
        for name in names
        if targets[name]["upstream"].get("available")
    }
    run_info = summary["run"]
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            plotly_js=_plotly_js(),
            scenario=run_info.get("scenario") or run.path.name,
            folder_name=run.path.name,
            started=_when(run_info.get("started_at")),
            duration=seconds(run_info.get("duration_s")),
            status=run_info.get("status"),
            incomplete=run_info.get("incomplete_reason"),
            notes=summary.get("notes", []),
            checks=_CHECKS,
            judged=judged,
            targets=targets,
            target_names=names,
            relay_names=relays,
            client_names=with_clients,
            headline=headline,
            memory_rows=_rows(summary, names, "memory", _MEMORY_ROWS),
            cancel_rows=_rows(summary, relays, "cancellation", _CANCEL_ROWS) if relays else [],
            client_rows=_client_rows(summary, with_clients) if with_clients else [],
            charts={
                "memory": by_key["memory"],
                "streams": [chart for chart in charts if chart.key.startswith("streams")],
                "tokens": by_key["tokens"],
                "latency": by_key["latency"],
                "timings": by_key["timings"],
            },
            figures=_figures(charts),
            upstream_notes=upstream_notes,
            settings=_settings(run.meta),
            files=_files(run.path),
        )
    )


def _write(path: Path, text: str) -> Path:
    aside = path.with_name(f".{path.name}.tmp")
    aside.write_text(text, encoding="utf-8")
    aside.replace(path)
    return path


def write_report(folder: Path) -> Path:
    """Analyse ``folder`` (writing summary.json), write its report.html and return that path.

    RunFolderError when ``folder`` is not a run folder or holds no measurement; an interrupted run gets a
    report of what was measured, marked incomplete.
    """
    run = load_run(folder)
    summary = analyse_run(run)
    _write(folder / SUMMARY, json.dumps(summary, indent=2) + "\n")
    return _write(folder / REPORT, render_report(run, summary))


# -- comparison ---------------------------------------------------------------------------------------------------
def _mark(reference: Any, value: Any, tolerance: float) -> str:
    if reference is None or value is None:
        return ""
    reference, value = float(reference), float(value)
    scale = max(abs(reference), abs(value))
    if scale == 0 or abs(value - reference) <= tolerance * scale:
        return ""
    return "worse" if value > reference else "better"


def render_comparison(runs: Sequence[tuple[str, RunData, dict[str, Any]]], tolerance: float = COMPARE_TOLERANCE) -> str:
    """One page setting ``runs`` (label, run, summary) side by side; the first is the reference."""
    names: list[str] = []
    for _, _, summary in runs:
        names += [name for name in summary["targets"] if name not in names]
    verdict_rows = []
    figure_rows = []
    for name in names:
        per_run = [summary["targets"].get(name) for _, _, summary in runs]
        for key, label in _CHECKS:
            verdicts = [target["verdicts"][key] if target else None for target in per_run]
            first = verdicts[0]["state"] if verdicts[0] else None
            cells = [
                {"verdict": v, "changed": index > 0 and (v["state"] if v else None) != first}
                for index, v in enumerate(verdicts)
            ]
            verdict_rows.append({"target": name, "check": label, "key": key, "cells": cells})
        for key, label, fmt in _HEADLINE:
            values = [target["headline"].get(key) if target else None for target in per_run]
            if all(value is None for value in values):
                continue
            cells = [
                {"text": fmt(value), "mark": _mark(values[0], value, tolerance) if index else ""}
                for index, value in enumerate(values)
            ]
            figure_rows.append({"target": name, "label": label, "cells": cells})
    chart = comparison_memory_chart([(label, run) for label, run, _ in runs])
    return (
        _environment()
        .get_template("compare.html.j2")
        .render(
            plotly_js=_plotly_js(),
            runs=[
                {
                    "label": label,
                    "scenario": summary["run"].get("scenario"),
                    "status": summary["run"].get("status"),
                    "started": _when(summary["run"].get("started_at")),
                    "duration": seconds(summary["run"].get("duration_s")),
                    "incomplete": summary["run"].get("incomplete_reason"),
                }
                for label, _, summary in runs
            ],
            tolerance=f"{tolerance:.0%}",
            verdict_rows=verdict_rows,
            figure_rows=figure_rows,
            chart=chart,
            figures=_figures([chart]),
        )
    )


def _labels(folders: Sequence[Path]) -> list[str]:
    labels = [folder.resolve().name for folder in folders]
    return [f"{label} ({index + 1})" if labels.count(label) > 1 else label for index, label in enumerate(labels)]


def write_comparison(folders: Sequence[Path], out: Path, tolerance: float = COMPARE_TOLERANCE) -> Path:
    """Analyse each run folder (without writing into them) and write one comparison page to ``out``."""
    runs = []
    for label, folder in zip(_labels(folders), folders, strict=True):
        run = load_run(folder)
        runs.append((label, run, analyse_run(run)))
    out.parent.mkdir(parents=True, exist_ok=True)
    return _write(out, render_comparison(runs, tolerance))
