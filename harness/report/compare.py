"""``harness compare``: several runs side by side, the first the reference, saying which changes are beyond noise.

Verdicts (the judge's checks) are set side by side and a changed state is outlined. Figures resting on per-stream
values are tested (harness.report.compare_stats) and coloured only when the change is both significant after
correction and large; single figures are shown with their change and no mark.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go  # type: ignore[import-untyped]

from harness.analyse.cancellation import per_stream_cancellation
from harness.analyse.clients import per_stream_timings
from harness.analyse.run_data import RunData, load_run
from harness.analyse.upstream import match_streams
from harness.judge.summary import summarise
from harness.report.chart_base import Chart, finish, fit_axes
from harness.report.charts import comparison_colors, comparison_memory_chart
from harness.report.compare_stats import CompareLimits, Comparison, compare_values, holm
from harness.report.formats import count, seconds, when
from harness.report.page import environment, figures, plotly_js, write_atomically
from harness.report.verdicts import RUN, checks_of, state_class

__all__ = ["DISTRIBUTIONS", "render_comparison", "write_comparison"]

Run = tuple[str, RunData, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Distribution:
    key: str
    label: str
    unit: str
    floor: Callable[[CompareLimits], float]
    values: Callable[[RunData, str], np.ndarray]


def _timing(column: str) -> Callable[[RunData, str], np.ndarray]:
    def values(run: RunData, name: str) -> np.ndarray:
        clients = run.clients[run.clients["target"] == name]
        if clients.empty:
            return np.array([], dtype=float)
        timings = per_stream_timings(clients)[column].to_numpy(dtype=float) * 1000.0
        return timings[timings >= 0]

    return values


def _cancel(column: str) -> Callable[[RunData, str], np.ndarray]:
    def values(run: RunData, name: str) -> np.ndarray:
        if run.target(name).role == "upstream" or run.upstream_streams.empty:
            return np.array([], dtype=float)
        rows = per_stream_cancellation(match_streams(run, name), run.windows.end)
        return rows[column].to_numpy(dtype=float)

    return values


DISTRIBUTIONS = (
    Distribution("ttfb", "time to first byte", "ms", lambda lim: lim.large_ms, _timing("ttfb_s")),
    Distribution("ttft", "time to first token", "ms", lambda lim: lim.large_ms, _timing("ttft_s")),
    Distribution(
        "token_gap", "token gap (mean per stream)", "ms", lambda lim: lim.large_ms / 20, _timing("token_gap_s")
    ),
    Distribution("cancel_latency", "cancellation latency", "ms", lambda lim: lim.large_ms, _cancel("latency_ms")),
    Distribution(
        "after_leave",
        "tokens produced after the client left",
        "tokens",
        lambda lim: lim.large_tokens,
        _cancel("tokens_after_leave"),
    ),
)
"""Figures compared on per-stream values: key, label, unit, the 'large' floor, the values of one target."""


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    digits = 1 if abs(value) >= 1 or value == 0 else 3  # sub-millisecond gaps keep their figures
    return f"{value:,.{digits}f} {unit}"


def _change_text(comparison: Comparison, unit: str) -> str:
    change = comparison.change
    if change is None or comparison.median_reference is None:
        return ""
    relative = f" ({change / comparison.median_reference:+.0%})" if comparison.median_reference else ""
    return f"{'+' if change >= 0 else '−'}{_number(abs(change), unit)}{relative}"


def _distribution_rows(runs: Sequence[Run], names: Sequence[str], limits: CompareLimits) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    raw: list[Comparison] = []
    where: list[tuple[int, int]] = []
    for name in names:
        for figure in DISTRIBUTIONS:
            samples = [
                figure.values(run, name) if name in {t.name for t in run.targets} else None for _, run, _ in runs
            ]
            if all(s is None or not len(s) for s in samples):
                continue
            reference = samples[0] if samples[0] is not None else np.array([], dtype=float)
            finite = reference[np.isfinite(reference)]
            cells: list[dict[str, Any]] = [
                {"text": _number(float(np.median(finite)), figure.unit) if len(finite) else "—", "n": len(finite)}
            ]
            for index, other in enumerate(samples[1:], start=1):
                where.append((len(rows), index))
                raw.append(compare_values(reference, other if other is not None else [], figure.floor(limits), limits))
                cells.append({})
            rows.append(
                {
                    "target": name,
                    "label": f"{figure.label} (median)",
                    "key": figure.key,
                    "unit": figure.unit,
                    "cells": cells,
                }
            )
    for (row, index), comparison in zip(where, holm(raw, limits.alpha), strict=True):
        if comparison.p_value is None:
            test = f"too few streams to test (n = {comparison.n_reference} vs {comparison.n_other})"
        else:
            test = f"n = {comparison.n_reference} vs {comparison.n_other}, p = {comparison.p_adjusted:.2g} (Holm)"
        unit = rows[row]["unit"]
        rows[row]["cells"][index] = {
            "text": _number(comparison.median_other, unit),
            "change": _change_text(comparison, unit),
            "test": test,
            "mark": comparison.direction(),
            "significant": comparison.significant,
            "large": comparison.large,
            "n": comparison.n_other,
        }
    return rows


def _single_rows(runs: Sequence[Run], names: Sequence[str]) -> list[dict[str, Any]]:
    """Each check's deciding figure against its limit (the judge's phrase) run by run, unmarked: one value per run
    gives no noise estimate."""
    per_run = [{(c.target, c.check): c for c in checks_of(summary) if c.target != RUN} for _, _, summary in runs]
    keys = [key for key in dict.fromkeys(key for table in per_run for key in table) if key[0] in names]
    rows = []
    for target, check in sorted(keys, key=lambda key: list(names).index(key[0])):
        views = [table.get((target, check)) for table in per_run]
        if all(view is None or view.state == "not judged" for view in views):
            continue
        label = next(view.label for view in views if view)
        cells = [{"text": view.phrase if view else "—"} for view in views]
        rows.append({"target": target, "label": label, "cells": cells})
    return rows


def _verdict_rows(runs: Sequence[Run]) -> list[dict[str, Any]]:
    per_run = [{(c.target, c.check): c for c in checks_of(summary)} for _, _, summary in runs]
    keys = list(dict.fromkeys(key for table in per_run for key in table))
    rows = []
    for key in keys:
        views = [table.get(key) for table in per_run]
        first = views[0].state if views[0] else None
        label = next(v.label for v in views if v)
        cells = [
            {
                "view": v,
                "css": state_class(v.state) if v else "na",
                "changed": i > 0 and (v.state if v else None) != first,
            }
            for i, v in enumerate(views)
        ]
        rows.append({"target": key[0], "check": label, "key": key[1], "cells": cells})
    return rows


def _ttft_chart(runs: Sequence[Run], colors: dict[str, str]) -> Chart:
    title = "Time to first token per stream, run by run"
    look = "Each box is one target in one run (the target's colour); boxes of the same colour should overlap."
    fig = go.Figure()
    values = _timing("ttft_s")
    for name, color in colors.items():
        xs: list[str] = []
        ys: list[float] = []
        for label, run, _ in runs:
            if name in {t.name for t in run.targets}:
                found = values(run, name)
                xs += [label] * len(found)
                ys += found.tolist()
        if ys:
            fig.add_trace(
                go.Box(
                    x=xs,
                    y=ys,
                    name=name,
                    legendgroup=name,
                    offsetgroup=name,
                    marker={"color": color},
                    line={"color": color},
                )
            )
    if not fig.data:
        return Chart("ttft", title, look, None, "No run has client streams with a first token.")
    fig.update_layout(
        boxmode="group", yaxis={"title": {"text": "ms (log scale)"}, "type": "log"}, xaxis={"type": "category"}
    )
    return Chart("ttft", title, look, fit_axes(finish(fig), x=False))


def render_comparison(runs: Sequence[Run], limits: CompareLimits | None = None) -> str:
    """One page setting ``runs`` (label, run, summary) side by side; the first is the reference."""
    limits = limits or CompareLimits()
    colors = comparison_colors([(label, run) for label, run, _ in runs])
    names = [name for name in colors if any(name in summary["targets"] for _, _, summary in runs)]
    charts = [comparison_memory_chart([(label, run) for label, run, _ in runs]), _ttft_chart(runs, colors)]
    return (
        environment()
        .get_template("compare.html.j2")
        .render(
            plotly_js=plotly_js(),
            runs=[
                {
                    "label": label,
                    "scenario": summary["run"].get("scenario"),
                    "status": summary["run"].get("status"),
                    "started": when(summary["run"].get("started_at")),
                    "duration": seconds(summary["run"].get("duration_s")),
                    "incomplete": summary["run"].get("incomplete_reason"),
                    "streams": count(len(run.clients)),
                }
                for label, run, summary in runs
            ],
            limits={
                "alpha": f"{limits.alpha:g}",
                "share": f"{limits.large_share:.0%}",
                "ms": f"{limits.large_ms:g} ms",
            },
            verdict_rows=_verdict_rows(runs),
            distribution_rows=_distribution_rows(runs, names, limits),
            single_rows=_single_rows(runs, names),
            colors=colors,
            charts=charts,
            figures=figures(charts),
        )
    )


def _labels(folders: Sequence[Path]) -> list[str]:
    labels = [folder.resolve().name for folder in folders]
    return [f"{label} ({index + 1})" if labels.count(label) > 1 else label for index, label in enumerate(labels)]


def write_comparison(folders: Sequence[Path], out: Path, limits: CompareLimits | None = None) -> Path:
    """Analyse each run folder (without writing into them) and write one comparison page to ``out``."""
    runs = []
    for label, folder in zip(_labels(folders), folders, strict=True):
        run = load_run(folder)
        runs.append((label, run, summarise(run)))
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(out, render_comparison(runs, limits))
