"""What the report and the comparison pages share: the templates, plotly's JavaScript embedded once (the pages
open offline), the figures as inline JSON, and writing a page atomically."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import jinja2
from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

from harness.report.chart_base import Chart, figure_json
from harness.report.formats import size
from harness.report.palette import STATE_COLORS

__all__ = ["environment", "figures", "plotly_js", "write_atomically"]


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("harness.report", "templates"),
        autoescape=True,
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["size"] = size
    env.globals["state_colors"] = STATE_COLORS
    return env


@cache
def plotly_js() -> str:
    # Embedded once per page so the file opens offline; "</script" cannot occur in it unescaped.
    script: str = get_plotlyjs()
    return script.replace("</script", "<\\/script")


def figures(charts: Sequence[Chart]) -> dict[str, str]:
    return {chart.key: figure_json(chart) for chart in charts if chart.figure is not None}


def write_atomically(path: Path, text: str) -> Path:
    aside = path.with_name(f".{path.name}.tmp")
    aside.write_text(text, encoding="utf-8")
    aside.replace(path)
    return path
