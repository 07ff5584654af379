"""The comparison page: verdicts side by side, per-stream figures marked only beyond noise, the CLI."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.report.compare import write_comparison
from tests.runfolders import MIB, CraftedRun, flat, leak, leaving_streams, slow_readers


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.marks: dict[tuple[str, str, str], str] = {}
        self.states: dict[tuple[str, str, str], tuple[str, str]] = {}
        self.charts: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs}
        if "data-figure" in found and "data-mark" in found:
            self.marks[(found["data-target"], found["data-figure"], found["data-run"])] = found["data-mark"]
        if "data-check" in found and "data-run" in found:
            self.states[(found["data-target"], found["data-check"], found["data-run"])] = (
                found["data-state"],
                found.get("class", ""),
            )
        if "data-chart" in found:
            self.charts.append(found["data-chart"])
        for key in ("src", "href"):
            if "://" in found.get(key, ""):
                self.external.append(found[key])


def _cells(path: Path) -> _Cells:
    cells = _Cells()
    cells.feed(path.read_text(encoding="utf-8"))
    return cells


def _run(root: Path, latency_s: float, *, leaking: bool = False, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    latencies = [float(latency_s + jitter) for jitter in rng.uniform(0, 0.005, 24)]
    return CraftedRun(
        rss={"lazy": leak(1 * MIB, start_s=10.0) if leaking else flat(seed=seed)},
        streams=[*leaving_streams("lazy", latencies), *slow_readers("lazy", 4, tokens_sent=20_000 if leaking else 1)],
    ).write(root)


def test_same_runs_mark_nothing_and_a_slower_cancel_is_marked_worse(tmp_path: Path) -> None:
    reference = _run(tmp_path / "a", 0.01)
    again = _run(tmp_path / "b", 0.01, seed=2)
    slower = _run(tmp_path / "c", 0.5, leaking=True, seed=3)
    cells = _cells(write_comparison([reference, again, slower], tmp_path / "out" / "compare.html"))
    assert cells.external == []
    assert cells.charts == ["memory", "ttft"]
    assert cells.marks[("lazy", "cancel_latency", "1")] == ""
    assert cells.marks[("lazy", "cancel_latency", "2")] == "worse"
    assert not any(mark for (_, _, run), mark in cells.marks.items() if run == "1")
    state, css = cells.states[("lazy", "backlog_slow_readers", "2")]
    assert (state, css) == ("fail", "changed")
    assert cells.states[("lazy", "backlog_slow_readers", "1")] == ("pass", "")
    text = (tmp_path / "out" / "compare.html").read_text(encoding="utf-8")
    assert "n = 28 vs 28" in text


@pytest.mark.parametrize(
    ("flag", "value"), [("--alpha", "1.5"), ("--min-change", "half"), ("--min-change-time", "soon")]
)
def test_bad_noise_flags_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    folder = _run(tmp_path, 0.01)
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(folder), str(folder), flag, value, "--out", str(tmp_path / "c.html")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert flag in error
    assert repr(value) in error
    assert not (tmp_path / "c.html").exists()


def test_noise_flags_set_what_counts_as_large(tmp_path: Path) -> None:
    reference = _run(tmp_path / "a", 0.01)
    slower = _run(tmp_path / "b", 0.05, seed=2)  # +40 ms, five times the reference's median
    out = tmp_path / "c.html"
    assert main(["compare", str(reference), str(slower), "--out", str(out)]) == 0
    assert _cells(out).marks[("lazy", "cancel_latency", "1")] == "worse"  # beyond 20 ms and 50%
    assert main(["compare", str(reference), str(slower), "--out", str(out), "--min-change-time", "100ms"]) == 0
    assert _cells(out).marks[("lazy", "cancel_latency", "1")] == ""
