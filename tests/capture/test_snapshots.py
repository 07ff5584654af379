"""Snapshot rounds and the growth analysis at the end, against a real probe (the Sampler's use of them, on the
bundled relays, is in test_sampling.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.capture.snapshots import Snapshots
from harness.runfolder import AFTER, BEFORE, RunFolder, TracemallocFiles
from tests.support import probed_program, wait_until


def test_without_probes_a_round_is_done_at_once_and_a_bad_label_is_refused(folder: RunFolder) -> None:
    snapshots = Snapshots(folder, {})
    snapshot_round = snapshots.take(BEFORE)
    assert snapshot_round.done
    assert snapshot_round.taken == {}
    with pytest.raises(ValueError, match="snapshot label must be letters, digits, - or _ .*but got '../x'"):
        snapshots.take("../x")
    assert snapshots.finish() == {}


def test_finish_takes_the_missing_end_snapshot_and_analyses_the_growth(tmp_path: Path, folder: RunFolder) -> None:
    with probed_program(tmp_path) as (client, grow, _):
        snapshots = Snapshots(folder, {"grower": client}, snapshot_timeout_s=30, analysis_timeout_s=60)
        assert snapshots.start()["profiled"] == [{"target": "grower", "nframe": 1}]
        before = snapshots.take(BEFORE)
        assert before.wait(30)
        assert snapshots.busy() == frozenset()
        for _ in range(3):  # 3 MB more, held by the program's list
            grow.write_text("")
            assert wait_until(lambda: not grow.exists(), 10)
        growth = snapshots.finish()  # a test stopped before the drain: the end snapshot is taken here
    files = TracemallocFiles(folder.tracemalloc, "grower")
    assert files.snapshot(AFTER).is_file()
    assert files.census(AFTER).is_file()
    assert growth["grower"]["snapshot_diff_bytes"] >= 3_000_000, growth
    assert files.summary.is_file()
    meta = folder.read_meta()["tracemalloc"]
    assert set(meta["snapshots"]["grower"]) == {BEFORE, AFTER}
    assert meta["snapshots"]["grower"][AFTER]["stalled_s"] > 0
    kinds = set(pd.read_csv(folder.file("events"))["kind"])
    assert {"tracemalloc_snapshot", "tracemalloc_note", "tracemalloc_growth"} <= kinds
    assert snapshots.finish() is growth  # once only
