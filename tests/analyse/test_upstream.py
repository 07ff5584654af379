"""Upstream figures from the upstream's own books: pairs, the whole-run excess, and the cases with nothing to pair."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.analyse.run_data import load_run
from harness.analyse.upstream import upstream_figures
from harness.runfolder import RunFolder, upstream_name
from tests.runfolders import T0, CraftedRun, flat, leaving_streams


def _without_records(folder: Path, open_streams: dict[float, int], target: str) -> Path:
    """The folder with no upstream records, and stats rows of ``target``'s upstream reporting ``open_streams``."""
    header = (folder / "upstream_streams.csv").read_text().splitlines()[0]
    (folder / "upstream_streams.csv").write_text(header + "\n")
    run = RunFolder(folder)
    run.table("stats").extend(
        {"t": T0 + t, "target": upstream_name(target), "upstream_of": target, "ok": 1, "open_streams": count}
        for t, count in sorted(open_streams.items())
    )
    run.finish()
    return folder


def test_a_target_whose_upstream_never_saw_a_request_says_so(tmp_path: Path) -> None:
    folder = CraftedRun(rss={"quiet": flat()}, streams=leaving_streams("quiet", [0.01] * 3)).write(tmp_path)
    figures = upstream_figures(load_run(_without_records(folder, {float(t): 0 for t in range(50)}, "quiet")), "quiet")
    assert figures.never_opened
    assert figures.basis == "aggregate"
    assert figures.note == "no upstream stream was ever opened by this target"
    assert figures.excess is not None
    assert figures.excess.peak == 0


def test_without_records_the_upstreams_stats_give_the_excess(tmp_path: Path) -> None:
    # three clients leave at 12.1, 12.6 and 13.1 s; the upstream reports one stream open from 12 s to the end
    folder = CraftedRun(rss={"lost": flat()}, streams=leaving_streams("lost", [0.01] * 3)).write(tmp_path)
    counts = {float(t): (1 if t >= 12 else 0) for t in range(50)}
    figures = upstream_figures(load_run(_without_records(folder, counts, "lost")), "lost")
    assert (figures.basis, figures.count_source, figures.never_opened) == ("aggregate", "stats", False)
    assert "records are missing" in figures.note
    assert figures.excess is not None
    assert figures.excess.peak == 1
    assert figures.excess.at_end == 1
    # from 13.1 s (the last client gone) to the run's end at 50 s
    assert figures.excess.longest_s == pytest.approx(50.0 - 13.1, abs=0.01)
    assert figures.orphans_at_end == 1


def test_paired_streams_and_the_excess_agree_for_a_server_that_never_cancels(tmp_path: Path) -> None:
    folder = CraftedRun(rss={"leaky": flat()}, streams=leaving_streams("leaky", [None] * 4)).write(tmp_path)
    figures = upstream_figures(load_run(folder), "leaky")
    assert figures.basis == "id:header"
    assert figures.orphans_at_end == 4
    assert figures.excess is not None
    assert (figures.excess.peak, figures.excess.at_end) == (4, 4)
    assert figures.upstream_streams == figures.matched_streams == 4
