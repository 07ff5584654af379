"""The run folder: create, append and flush, meta.json, finish, open; read back with pandas."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.errors import RunFolderError
from harness.runfolder import EVENT_COLUMNS, META, RunFolder


def test_create_writes_meta_running_and_a_unique_folder(tmp_path: Path) -> None:
    first = RunFolder.create(tmp_path, "disconnects wave", {"flags": {"users": 10}})
    second = RunFolder.create(tmp_path, "disconnects wave")
    assert first.path != second.path
    assert first.path.name.startswith("disconnects-wave-")
    meta = json.loads((first.path / META).read_text())
    assert meta["status"] == "running"
    assert meta["scenario"] == "disconnects wave"
    assert meta["flags"] == {"users": 10}
    assert "python" in meta["versions"]


def test_rows_are_on_disk_after_each_append_before_any_close(tmp_path: Path) -> None:
    folder = RunFolder.create(tmp_path, "flush")
    table = folder.table("samples", ("t", "target", "rss_bytes"))
    table.append({"t": 1.25, "target": "lazy", "rss_bytes": 1024})
    table.extend([{"t": 1.5, "target": "lazy"}])  # a missing value is an empty cell
    folder.event("phase_start", "warm-up")
    read = pd.read_csv(folder.file("samples"))  # read while the appender is still open
    assert list(read["t"]) == [1.25, 1.5]
    assert read["rss_bytes"].isna().tolist() == [False, True]
    assert list(pd.read_csv(folder.file("events")).columns) == list(EVENT_COLUMNS)
    folder.finish()


def test_update_meta_merges_and_finish_marks_the_end(tmp_path: Path) -> None:
    folder = RunFolder.create(tmp_path, "meta")
    folder.update_meta(sampler={"interval_s": 0.25})
    folder.finish("interrupted")
    meta = RunFolder.open(folder.path).read_meta()
    assert meta["sampler"] == {"interval_s": 0.25}
    assert meta["status"] == "interrupted"
    assert meta["ended_at"] >= meta["started_at"]


def test_reopening_a_table_appends_without_a_second_header(tmp_path: Path) -> None:
    folder = RunFolder.create(tmp_path, "reopen")
    folder.table("stats", ("t", "ok")).append({"t": 1.0, "ok": 1})
    folder.finish()
    again = RunFolder.open(folder.path)
    again.table("stats", ("t", "ok")).append({"t": 2.0, "ok": 0})
    again.finish()
    assert list(pd.read_csv(folder.file("stats"))["t"]) == [1.0, 2.0]


def test_a_table_without_columns_is_refused(tmp_path: Path) -> None:
    folder = RunFolder.create(tmp_path, "columns")
    with pytest.raises(ValueError, match="table 'mystery' has no fixed columns"):
        folder.table("mystery")
    folder.finish()


def test_open_rejects_what_is_not_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(RunFolderError, match="does not exist"):
        RunFolder.open(tmp_path / "nowhere")
    with pytest.raises(RunFolderError, match="has no meta.json"):
        RunFolder.open(tmp_path)
