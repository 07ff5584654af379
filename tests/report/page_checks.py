"""What the browser tests check on every plotly chart of a page: it has data, every data point lies inside the
axis range the browser drew, and each target (a trace's legendgroup) has one colour across all the page's charts."""

from __future__ import annotations

from typing import Any

_CHARTS_JS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(div => {
  const layout = div._fullLayout;
  const axis = name => {
    const a = layout[name];
    return a ? {type: a.type, range: a.range.slice()} : null;
  };
  const number = v => (v === null || v === undefined || v === '' ? null : Number(v));
  const traces = div._fullData.filter(t => t.visible !== false).map(t => {
    const ys = Array.from(t.y || []).map(number).filter(v => v !== null && Number.isFinite(v));
    const categoricalX = t.type === 'box' || t.type === 'bar' || (layout.xaxis && layout.xaxis.type === 'category');
    const xs = categoricalX ? [] : Array.from(t.x || []).map(number).filter(v => v !== null && Number.isFinite(v));
    return {
      name: t.name, group: t.legendgroup || null, _i: t.index, type: t.type, points: ys.length,
      color: (t.type === 'scatter' ? t.line && t.line.color : t.marker && t.marker.color) || null, xs, ys,
    };
  });
  return {id: div.id, x: axis('xaxis'), y: axis('yaxis'), traces};
})
"""


def charts(page: Any) -> list[dict[str, Any]]:
    """Every drawn chart of ``page``: id, axes (type, range as drawn) and traces (group, colour, points)."""
    found: list[dict[str, Any]] = page.evaluate(_CHARTS_JS)
    return found


def _outside(values: list[float], axis: dict[str, Any] | None) -> list[float]:
    if axis is None or axis["type"] == "category" or not values:
        return []
    low, high = sorted(float(v) for v in axis["range"])
    if axis["type"] == "log":
        low, high = 10**low, 10**high
        return [v for v in values if v > 0 and not (low <= v <= high)]
    return [v for v in values if not (low <= v <= high)]


def problems(drawn: list[dict[str, Any]]) -> list[str]:
    """Charts without data, data points outside an axis, targets drawn in two colours; empty when all is sound."""
    found: list[str] = []
    colors: dict[str, set[str]] = {}
    for chart in drawn:
        if not any(trace["points"] for trace in chart["traces"]):
            found.append(f"{chart['id']}: no data points")
        for trace in chart["traces"]:
            for axis, values in (("x", trace["xs"]), ("y", trace["ys"])):
                outside = _outside(values, chart[axis])
                if outside:
                    found.append(
                        f"{chart['id']} {trace['name']}: {len(outside)} {axis} values outside {chart[axis]['range']}, "
                        f"e.g. {outside[:3]}"
                    )
            if trace["group"] and isinstance(trace["color"], str):
                colors.setdefault(trace["group"], set()).add(trace["color"])
    found += [f"target {group} drawn in {sorted(seen)}" for group, seen in colors.items() if len(seen) > 1]
    return found


def legend_colors(drawn: list[dict[str, Any]]) -> dict[str, str]:
    """Target -> its colour (the checks above make it unique)."""
    return {
        trace["group"]: trace["color"]
        for chart in drawn
        for trace in chart["traces"]
        if trace["group"] and isinstance(trace["color"], str)
    }
