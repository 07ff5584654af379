"""The live view: rows read as the sampler appends them, and a real web-UI run watched in headless Chromium."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from harness.report.live_view import LIVE_PATH, CsvTail, LiveData
from harness.runfolder import TABLES, RunFolder
from tests.browser import SCREENSHOTS, launch, needs_chromium, watch_errors
from tests.report.page_checks import charts, legend_colors, problems
from tests.support import DISCONNECTS, free_port, locust, wait_until


def test_csv_tail_reads_only_new_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("t,value\n1,a\n2,b")  # the last line is still being written
    tail = CsvTail(path)
    assert tail.new_rows() == [{"t": "1", "value": "a"}]
    assert tail.new_rows() == []
    with path.open("a") as file:
        file.write("bb\n3,c\n")
    assert tail.new_rows() == [{"t": "2", "value": "bbb"}, {"t": "3", "value": "c"}]
    assert CsvTail(tmp_path / "missing.csv").new_rows() == []


def test_live_data_follows_the_run_folder(tmp_path: Path) -> None:
    folder = RunFolder.create(tmp_path, "live")
    samples, stats = folder.table("samples"), folder.table("stats")
    live = LiveData(folder)
    for second in range(3):
        t = 1000.0 + second
        samples.append({"t": t, "target": "eager", "rss_bytes": (40 + 10 * second) * 2**20})
        stats.append(
            {
                "t": t,
                "target": "eager",
                "ok": 1,
                "open_upstream_streams": 5,
                "active_client_streams": 5 - 2 * second,
                "buffered_bytes": second * 2**20,
            }
        )
        stats.append({"t": t, "target": "upstream", "ok": 0, "error": "timed out"})  # a gap is skipped
    live.refresh()
    rows = {row["target"]: row for row in live.table_rows()}
    assert rows["eager"]["rss"] == "60.0 MiB"
    assert rows["eager"]["growth"] == "+20.0 MiB"
    assert rows["eager"]["buffered"] == "2.00 MiB"
    assert (rows["eager"]["upstream"], rows["eager"]["clients"], rows["eager"]["orphans"]) == ("5", "1", "4")
    assert "upstream" not in rows
    payload = live.as_json(since=1000.5)
    assert payload["start"] == 1000.0
    assert payload["series"]["eager"]["rss_bytes"] == [[1.0, 50 * 2**20], [2.0, 60 * 2**20]]
    assert set(TABLES["samples"]) >= {"t", "target", "rss_bytes"}
    folder.finish()


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


@pytest.mark.slow
@needs_chromium
def test_live_view_during_a_web_ui_run(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = (
        "-f",
        DISCONNECTS,
        "--web-host",
        "127.0.0.1",
        "--web-port",
        str(port),
        "--autostart",
        "--autoquit",
        "10",  # counted from the test's stop, when its report is written: the report page has 10 s to load
        "--scenario-scale",
        "0.2",  # about 20 s: the live page is drawn and redrawn well before the test stops
    )
    with locust(tmp_path, *args) as run:

        def server_side_rows() -> list[dict[str, str]]:
            try:
                answer = _get(f"{base}/stats/requests")
            except OSError:
                return []
            tables = {table["key"]: table["data"] for table in answer.get("extended_stats", [])}
            return list(tables.get("stream-harness", []))

        assert wait_until(lambda: any(row["target"] == "eager" and row["rss"] for row in server_side_rows()), 60)
        with sync_api.sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                page = browser.new_page()
                errors = watch_errors(page)
                outside: list[str] = []
                page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(base) else None)
                page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
                # the report's charts for the data so far, redrawn while the test runs
                page.goto(base + LIVE_PATH)
                page.wait_for_selector('#chart-memory[data-drawn="1"] svg.main-svg', timeout=30_000)
                assert "Run running" in page.inner_text("#status")  # drawn mid-run
                live = charts(page)
                assert problems(live) == []
                live_colors = legend_colors(live)
                assert {"upstream@eager", "eager", "lazy", "bounded"} <= set(live_colors)
                first = {chart["id"]: sum(t["points"] for t in chart["traces"]) for chart in live}
                assert wait_until(
                    lambda: (
                        sum(t["points"] for c in charts(page) if c["id"] == "chart-memory" for t in c["traces"])
                        > first["chart-memory"]
                    ),
                    30,
                )  # it updates
                page.wait_for_selector('#chart-orphans[data-drawn="1"] svg.main-svg', timeout=30_000)
                assert problems(charts(page)) == []
                SCREENSHOTS.mkdir(exist_ok=True)
                page.screenshot(path=str(SCREENSHOTS / "live-page.png"), full_page=True)
                # Locust's own UI has the tab, filled from the same rows, and links to the chart page
                page.goto(f"{base}/?tab=stream-harness")
                page.get_by_role("cell", name="eager", exact=True).wait_for(timeout=20_000)
                page.goto(f"{base}/?tab=reports")
                page.locator(f'a[href="{LIVE_PATH}"]').wait_for(timeout=20_000)
                page.goto(base + LIVE_PATH)
                page.wait_for_selector("#report-link", timeout=60_000)  # the test stopped
                page.click("#report-link")
                page.wait_for_selector("#verdict-table", timeout=20_000)
                page.wait_for_function(
                    "document.querySelectorAll('.chart').length == "
                    "document.querySelectorAll('.chart[data-drawn=\"1\"]').length",
                    timeout=30_000,
                )
                report = charts(page)
                assert problems(report) == []
                assert legend_colors(report) == live_colors  # the same colour per target in both
            finally:
                browser.close()
        assert errors == []
        assert outside == []
        assert run.proc.wait(timeout=60) == 0
