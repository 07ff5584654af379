"""Locust's statistics count streams (contract 7), through a real headless Locust run: its request count equals the
number of client records, one request name per target, failures only for failed streams."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from tests.support import DISCONNECTS, assert_all_gone, locust


@pytest.mark.slow
def test_locusts_request_count_is_the_number_of_streams(tmp_path: Path) -> None:
    stats_file = tmp_path / "stats.json"  # Locust adds ".json" to --json-file
    with locust(
        tmp_path, "-f", DISCONNECTS, "--headless", "--scenario-scale", "0.1", "--json-file", str(tmp_path / "stats")
    ) as run:
        assert run.wait(90) == 0, run.output()[-3000:]
        with (run.folder() / "clients.csv").open(newline="") as file:
            clients = list(csv.DictReader(file))
        entries = [entry for entry in json.loads(stats_file.read_text()) if entry["method"] in ("SSE", "STREAM")]
        assert clients
        assert sum(entry["num_requests"] for entry in entries) == len(clients)
        per_target = Counter(row["target"] for row in clients)
        assert {entry["name"]: entry["num_requests"] for entry in entries} == {
            f"{target} stream": count for target, count in per_target.items()
        }
        failed = sum(row["outcome"] not in ("completed", "left") for row in clients)
        assert sum(entry["num_failures"] for entry in entries) == failed
        assert_all_gone(run.tag)
