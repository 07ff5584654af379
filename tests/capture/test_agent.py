"""``harness agent`` as a real process serving real samples over HTTP, and its flags."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.runfolder import RunFolder
from tests.support import Stack, agent_running


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def test_agent_serves_samples_since_a_time_and_stops_cleanly(stack: Stack, tmp_path: Path) -> None:
    with agent_running(stack, "lazy", tmp_path, as_name="lazy") as agent:
        _serves_samples(str(agent.url))
        assert agent.stop() == 0  # SIGTERM: a clean stop
    (folder_path,) = tmp_path.glob("agent-*/")
    assert RunFolder.open(folder_path).read_meta()["status"] == "complete"


def _serves_samples(url: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        tables = _get(url + "/samples")["tables"]
        if len(tables.get("samples", [])) >= 3:
            break
        assert time.monotonic() < deadline, "the agent served no samples within 10 s"
        time.sleep(0.1)
    sample = tables["samples"][-1]
    assert sample["target"] == "lazy"
    assert sample["rss_bytes"] > 0
    assert tables["connections"][-1]["method"] in ("netlink", "ss", "psutil")
    assert tables["stats"][-1]["ok"] == 1
    since = tables["samples"][1]["t"]
    later = _get(f"{url}/samples?since={since}")
    assert later["now"] >= since
    assert all(row["t"] > since for rows in later["tables"].values() for row in rows)
    assert len(later["tables"]["samples"]) >= len(tables["samples"]) - 2
    assert _get(url + "/meta")["sampler"]["interval_s"] == 0.1

    # The cursor: exactly the rows kept after an earlier answer, none twice, whatever their t.
    numbered = _get(url + "/samples")
    time.sleep(0.3)
    after = _get(f"{url}/samples?cursor={numbered['cursor']}")
    assert after["run"] == numbered["run"] == Path(after["run"]).name
    assert after["cursor"] > numbered["cursor"]
    for table, rows in after["tables"].items():
        old_rows = numbered["tables"].get(table, [])
        assert not [row for row in rows if row in old_rows], f"{table}: rows served twice"
    assert len(after["tables"]["samples"]) >= 1

    with pytest.raises(urllib.error.HTTPError, match="400"):
        _get(url + "/samples?since=yesterday")
    with pytest.raises(urllib.error.HTTPError, match="400"):
        _get(url + "/samples?cursor=-1")
    with pytest.raises(urllib.error.HTTPError, match="404"):
        _get(url + "/nothing")


def test_agent_rejects_bad_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["agent", "--pid", "0", "--port", "0"])
    assert exited.value.code == 2
    assert "--pid must be a process id >= 1, but got '0'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["agent", "--pid", "1", "--port", "0", "--interval", "soon"])
    assert exited.value.code == 2
    assert "--interval must be a duration" in capsys.readouterr().err
