"""report.html and the comparison page: self-contained, every chart or the sentence why not, verdicts, CLI.

Reports of real runs in a browser: test_pages_in_browser.py.
"""

from __future__ import annotations

import html
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.cli import main
from harness.report.html import REPORT, write_report
from tests.runfolders import MIB, CraftedRun, flat, leak, leaving_streams, slow_readers

REPO = Path(__file__).resolve().parents[2]


class _Page(HTMLParser):
    """Collects what the tests look at: element ids, chart divs, external references, verdict cells."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.charts: list[str] = []
        self.missing: list[str] = []
        self.external: list[str] = []
        self.verdicts: dict[tuple[str, str], str] = {}
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs}
        if "id" in found:
            self.ids.add(found["id"])
        if "data-chart" in found:
            self.charts.append(found["data-chart"])
        if "data-missing-chart" in found:
            self.missing.append(found["data-missing-chart"])
        for key in ("src", "href"):
            if "://" in found.get(key, "") or found.get(key, "").startswith("//"):
                self.external.append(found[key])
        if "data-state" in found and "data-target" in found:
            self.verdicts[(found["data-target"], found["data-check"])] = found["data-state"]


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def _two_relays(tmp_path: Path) -> Path:
    streams = leaving_streams("eager", [2.0, 2.0, None]) + leaving_streams("lazy", [0.01, 0.02, 0.03], read_s=1.0)
    streams += [*slow_readers("eager", 4, tokens_sent=20_000), *slow_readers("lazy", 4)]  # eager pulls ahead
    run = CraftedRun(
        rss={"upstream": flat(), "eager": leak(1 * MIB, start_s=10.0), "lazy": flat()},
        roles={"upstream": "upstream", "eager": "relay", "lazy": "relay"},
        streams=streams,
    )
    return run.write(tmp_path)


def test_report_is_self_contained_with_every_chart_and_the_verdicts(tmp_path: Path) -> None:
    path = write_report(_two_relays(tmp_path))
    assert path == path.parent / REPORT
    page = _parse(path)
    assert page.external == []
    assert page.charts == ["memory", "orphans", "streams", "tokens", "latency", "ttft", "timings"]
    assert sorted(page.missing) == ["buffer", "cpu", "fds", "gap", "tasks", "traced"]  # none in the crafted run
    assert page.verdicts[("eager", "backlog_slow_readers")] == "fail"
    assert page.verdicts[("eager", "leaked_streams")] == "fail"
    assert page.verdicts[("lazy", "backlog_slow_readers")] == "pass"
    assert page.verdicts[("lazy", "cancel_latency")] == "pass"
    summary = json.loads((path.parent / "summary.json").read_text())
    text = path.read_text(encoding="utf-8")
    for check in summary["checks"]:  # the report shows the judge's checks, word for word
        if check["target"] == "run":
            continue  # the run's own checks are lines above the table (a passing one may be left out)
        assert page.verdicts[(check["target"], check["check"])] == check["state"]
        assert html.escape(check["sentence"], quote=False) in text
    assert text.count("Plotly.newPlot") == 1  # plotly.js embedded once, one loop draws every figure
    assert 'href="samples.csv"' in text
    assert 'href="summary.json"' in text
    assert (path.parent / "summary.json").is_file()


def test_missing_data_leaves_out_charts_with_a_sentence(tmp_path: Path) -> None:
    folder = CraftedRun(rss={"lazy": flat()}).write(tmp_path)  # no clients, no upstream records
    page = _parse(write_report(folder))
    assert page.charts == ["memory"]
    assert {"orphans", "streams", "tokens", "latency", "ttft", "gap", "timings", "traced", "cpu"} <= set(page.missing)
    text = (folder / REPORT).read_text(encoding="utf-8")
    assert "profiling was off for lazy" in text


def test_interrupted_run_report_is_marked_incomplete(tmp_path: Path) -> None:
    folder = CraftedRun(rss={"lazy": flat()}, status="interrupted").write(tmp_path)
    page = _parse(write_report(folder))
    assert "incomplete" in page.ids


def test_cli_report_prints_the_path_and_refuses_bad_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = CraftedRun(rss={"lazy": flat()}).write(tmp_path)
    assert main(["report", str(folder)]) == 0
    assert capsys.readouterr().out.strip() == str(folder / REPORT)
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "does not exist" in error
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(folder)])
    assert exit_info.value.code == 2
    out = tmp_path / "c.html"
    assert main(["compare", str(folder), str(folder), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)


def test_report_is_plotly_plus_little(tmp_path: Path) -> None:
    from harness.report.page import plotly_js

    path = write_report(_two_relays(tmp_path))
    extra = path.stat().st_size - len(plotly_js().encode())
    assert 0 < extra < 400_000, f"{extra} bytes beside plotly.js"
