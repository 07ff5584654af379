"""Locust's statistics count streams (contract 7), through a real headless Locust run (the session's
``bundled_runs["disconnects"]``, tests/conftest.py): its request count equals the number of client records, one
request name per target, failures only for failed streams. The same run shows the terminal's lines under
--only-summary: phases and the verdict table, no periodic per-target lines."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from tests.support import LocustRun


@pytest.mark.slow
@pytest.mark.timeout(240)  # the first to ask makes the session's bundled runs
def test_locusts_request_count_is_the_number_of_streams(bundled_runs: dict[str, LocustRun]) -> None:
    run = bundled_runs["disconnects"]
    stats_file = run.log.parent / "stats.json"  # its --json-file (Locust adds ".json")
    clients = run.table("clients")
    entries = [entry for entry in json.loads(stats_file.read_text()) if entry["method"] in ("SSE", "STREAM")]
    assert clients
    assert sum(entry["num_requests"] for entry in entries) == len(clients)
    per_target = Counter(row["target"] for row in clients)
    assert {entry["name"]: entry["num_requests"] for entry in entries} == {
        f"{target} stream": count for target, count in per_target.items()
    }
    failed = sum(row["outcome"] not in ("completed", "left") for row in clients)
    assert sum(entry["num_failures"] for entry in entries) == failed
    output = run.output()
    assert re.search(r"\[harness\] phase 'warm-up' \(1/\d+\) starts for", output)
    assert "s left in the scenario" in output
    assert "[harness] eager: RSS" not in output  # --only-summary: no periodic lines
    verdicts = [line for line in output.splitlines() if line.startswith("[harness] ")]
    assert any(line.startswith("[harness] FAIL       eager ") for line in verdicts)
    assert any(line.startswith("[harness] verdict: ") for line in verdicts)
