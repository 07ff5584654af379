"""The judge on real servers (tests/targets_apps/judged_servers.py), with default limits: each bug fails its own
check, each fix passes it; and every check the run stored is the gate's, word for word.

Two Locust runs, several targets each (every target gets the same users: fair load):

- disconnects.py at scale 0.3 (its churn phase lasts 8 s whatever the scale), with the defaults: the launched
  servers run under the probe that only counts (no tracemalloc; it alone counts asyncio tasks, and this leak
  shows in no other reading): a relay keeping one heartbeat task per disconnected client fails churn_resources,
  its fix passes; a relay keeping an audit log of every stream fails growth_per_request, its bounded log passes.
- slow_readers.py at scale 0.3 (its slow-reader phase lasts 15 s whatever the scale): the bundled eager relay
  (unbounded buffer) fails backlog_slow_readers; the audit-log relay does not (its growth is per request; what
  it holds per slow reader is aiohttp's read buffer, some hundreds of KiB, a warning at most); a relay writing
  with no send timeout is warned about stalled clients, one with a 3 s timeout is not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.gate.config import GateOptions
from harness.gate.run import gate
from tests.support import REPO, assert_all_gone, locust

SERVER = f"{sys.executable} -m tests.targets_apps.judged_servers --port {{port}} --upstream {{upstream}} --variant"


def _launch(*variants: str) -> list[str]:
    return [arg for variant in variants for arg in ("--launch", f"{variant}={SERVER} {variant}")]


def _checks(folder: Path) -> dict[tuple[str, str], dict[str, Any]]:
    summary = json.loads((folder / "summary.json").read_text())
    return {(check["target"], check["check"]): check for check in summary["checks"]}


def _same_as_the_gate(folder: Path) -> None:
    stored = _checks(folder)
    verdict = gate(folder, GateOptions(write_summary=False))
    judged = {(check.target, check.check): check for check in verdict.results}
    assert set(judged) <= set(stored)
    for key, check in judged.items():
        assert (stored[key]["state"], stored[key]["sentence"]) == (check.state, check.sentence), key


def _run(tmp_path: Path, scenario: str, *args: str) -> Path:
    with locust(
        tmp_path, "-f", str(REPO / "locustfiles" / scenario), "--headless", "--scenario-scale", "0.3", *args
    ) as run:
        code = run.wait(150)
        output = run.output()
        assert code == 0, output[-4000:]
        folder = run.folder()
    assert_all_gone(run.tag)
    return folder


@pytest.mark.slow
def test_per_connection_and_per_request_leaks_in_the_disconnect_scenario(tmp_path: Path) -> None:
    folder = _run(
        tmp_path,
        "disconnects.py",
        *_launch("heartbeat-leak", "heartbeat", "audit-leak", "audit"),
    )
    checks = _checks(folder)

    def state(target: str, check: str) -> str:
        return str(checks[(target, check)]["state"])

    leak = checks[("heartbeat-leak", "churn_resources")]
    assert leak["state"] == "fail", leak["sentence"]
    assert (
        " asyncio tasks kept per 1,000 connections (limit 100, when it rises in every round); it rose in every"
        in (leak["sentence"])
    )
    assert state("heartbeat", "churn_resources") == "pass", checks[("heartbeat", "churn_resources")]["sentence"]
    grower = checks[("audit-leak", "growth_per_request")]
    assert grower["state"] == "fail", grower["sentence"]
    assert state("audit", "growth_per_request") == "pass", checks[("audit", "growth_per_request")]["sentence"]
    for name in ("heartbeat-leak", "heartbeat", "audit-leak", "audit"):  # they all cancel their upstream
        assert state(name, "leaked_streams") == "pass", checks[(name, "leaked_streams")]["sentence"]
    _same_as_the_gate(folder)


@pytest.mark.slow
def test_backlogs_and_stalled_clients_in_the_slow_reader_scenario(tmp_path: Path) -> None:
    folder = _run(
        tmp_path,
        "slow_readers.py",
        "--targets",
        "eager",
        *_launch("audit-leak", "no-send-timeout", "send-timeout"),
    )
    checks = _checks(folder)
    backlog = checks[("eager", "backlog_slow_readers")]
    assert backlog["state"] == "fail", backlog["sentence"]
    per_request = checks[("audit-leak", "backlog_slow_readers")]
    assert per_request["state"] != "fail", per_request["sentence"]
    assert "a buffer that filled, not a growing backlog" in per_request["sentence"]
    held = checks[("no-send-timeout", "stalled_clients")]
    assert held["state"] == "warn", held["sentence"]
    assert "no send timeout let them go" in held["sentence"]
    dropped = checks[("send-timeout", "stalled_clients")]
    assert dropped["state"] == "pass", dropped["sentence"]
    assert dropped["figure"] < 10.0
    _same_as_the_gate(folder)
