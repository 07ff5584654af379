"""The report and the comparison of real runs, loaded in Debian's headless Chromium as a person would open them.

Per page: every chart has data, every data point lies inside the axis range the browser drew, each target has one
colour in every chart (the report's palette, in meta.json's order), no console error, no request leaves the file.
The top of each bundled scenario's report is saved to test-screenshots/ (not committed) to be looked at.
The comparison: two runs of one scenario and stack mark no figure as changed; a deliberately slower relay's time
to first token is marked as a change beyond noise.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.report.html import REPORT
from harness.report.palette import target_colors
from tests.browser import SCREENSHOTS, launch, needs_chromium, watch_errors
from tests.report.page_checks import charts, legend_colors, problems
from tests.support import SHORT, LocustRun, side_by_side

pytestmark = [pytest.mark.slow, needs_chromium, pytest.mark.timeout(240)]  # fixtures of 3 runs each
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (pip install playwright)")

SCENARIOS = ("disconnects", "mixed", "slow_readers")
_ALL_DRAWN = (
    "document.querySelectorAll('.chart').length > 0 && "
    "document.querySelectorAll('.chart').length == document.querySelectorAll('.chart[data-drawn=\"1\"]').length"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = launch(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


def _open(browser: Any, path: Path) -> tuple[Any, list[str], list[str]]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = watch_errors(page)
    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url) if not request.url.startswith("file:") else None)
    page.goto(path.as_uri())
    page.wait_for_function(_ALL_DRAWN, timeout=30_000)
    return page, errors, outside


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_report_of_each_bundled_scenario(browser: Any, bundled_runs: dict[str, LocustRun], scenario: str) -> None:
    folder = bundled_runs[scenario].folder()  # the session's runs (tests/conftest.py): the probe on but for disconnects
    summary = json.loads((folder / "summary.json").read_text())
    meta = json.loads((folder / "meta.json").read_text())
    page, errors, outside = _open(browser, folder / REPORT)
    try:
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"report-top-{scenario}.png"))
        drawn = charts(page)
        states = page.eval_on_selector_all(
            "#verdict-table td[data-state]",
            "cells => cells.map(c => [c.dataset.target, c.dataset.check, c.dataset.state])",
        )
    finally:
        page.close()
    assert errors == []
    assert outside == []
    assert problems(drawn) == []
    assert {chart["id"] for chart in drawn} >= {"chart-memory", "chart-cpu", "chart-ttft", "chart-orphans"}
    if scenario != "disconnects":
        assert "chart-traced" in {chart["id"] for chart in drawn}
    expected = target_colors((t["name"], t["role"]) for t in meta["targets"])
    assert legend_colors(drawn) == {name: color for name, color in expected.items() if name in legend_colors(drawn)}
    assert set(legend_colors(drawn)) >= {"eager", "lazy", "bounded"}
    # exactly the summary's checks and states, nothing recomputed
    shown = {(target, check): state for target, check, state in states}
    assert shown == {(c["target"], c["check"]): c["state"] for c in summary["checks"]}
    if scenario == "disconnects":
        assert shown[("eager", "cancel_latency")] == "fail"  # eager never cancels: p99 is the rest of the stream
        assert shown[("eager", "tokens_after_leave")] == "fail"
        assert shown[("lazy", "cancel_latency")] == "pass"


def _slow_relay(delay_s: float) -> tuple[str, ...]:
    command = f"relay={sys.executable} -m tests.report.slow_relay {delay_s} --host {{host}} --port {{port}} "
    command += "--upstream {upstream}"
    return (
        "-f",
        SHORT,
        "--headless",
        "--launch",
        command,
        "--upstream-tokens",
        "20",
        "--upstream-rate",
        "0",
        "--only-summary",
    )


@pytest.fixture(scope="module")
def compare_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The same relay twice, and slower by 300 ms per stream, the three at once: side by side the two identical
    runs share the machine's load (measured: one after the other, a busy moment during one moved its median time
    to first token by more than 20 ms and 50%, beyond any fixed floor)."""
    runs = {"a": _slow_relay(0.0), "b": _slow_relay(0.0), "slow": _slow_relay(0.3)}
    done = side_by_side(tmp_path_factory.mktemp("compare"), runs, timeout_s=90)
    return [done["a"].folder(), done["b"].folder(), done["slow"].folder()]


def _marks(page: Any) -> dict[tuple[str, str], str]:
    cells = page.eval_on_selector_all(
        "#distribution-table td[data-run='1']",
        "cells => cells.map(c => [c.dataset.target, c.dataset.figure, c.dataset.mark])",
    )
    return {(target, figure): mark for target, figure, mark in cells}


def test_compare_marks_only_changes_beyond_noise(browser: Any, compare_runs: list[Path], tmp_path: Path) -> None:
    same, slower = tmp_path / "same.html", tmp_path / "slower.html"
    reference, again, slow = compare_runs
    assert main(["compare", str(reference), str(again), "--out", str(same)]) == 0
    assert main(["compare", str(reference), str(slow), "--out", str(slower)]) == 0
    found = {}
    for out in (same, slower):
        page, errors, outside = _open(browser, out)
        try:
            drawn = charts(page)
            found[out.stem] = _marks(page)
            if out is slower:
                SCREENSHOTS.mkdir(exist_ok=True)
                page.screenshot(path=str(SCREENSHOTS / "compare-slower-relay.png"), full_page=True)
        finally:
            page.close()
        assert errors == []
        assert outside == []
        assert problems(drawn) == []
        assert "relay" in legend_colors(drawn)  # and its upstream (upstream@relay), in grey
    assert found["same"], "no per-stream figure compared"
    assert {key: mark for key, mark in found["same"].items() if mark} == {}
    assert found["slower"][("relay", "ttft")] == "worse"
    assert found["slower"][("relay", "ttfb")] == "worse"
