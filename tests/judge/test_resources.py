"""Per-connection checks on crafted runs: resources kept under churn (a leak rises every round), stalled clients."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.analyse.analysis import analyse_run
from harness.analyse.run_data import load_run
from harness.judge.check import Check
from harness.judge.judgement import judge_summary
from harness.judge.limits import Limits
from harness.judge.resources import check_stalled
from tests.runfolders import CraftedRun, Series, Stream, flat, leaving_streams

PHASES = (("warm-up", 0.0, 10.0), ("churn", 10.0, 30.0), ("drain", 30.0, 40.0))
CHURN = leaving_streams("x", [0.01] * 400, start_s=10.0, every_s=0.05)  # 20 connections a second for 20 s


def _churn(tmp_path: Path, fds: Series) -> Check:
    run = CraftedRun(phases=PHASES, rss={"x": flat()}, fds={"x": fds}, streams=CHURN)
    checks = judge_summary(analyse_run(load_run(run.write(tmp_path))))
    (check,) = [c for c in checks if c.check == "churn_resources"]
    return check


def test_one_descriptor_kept_per_connection_fails(tmp_path: Path) -> None:
    check = _churn(tmp_path, lambda t: 12 + 20 * min(max(t - 10.0, 0.0), 20.0))  # one per connection, for good
    assert check.state == "fail", check.sentence
    assert 900 < (check.figure or 0) <= 1000
    assert check.sentence.startswith("1000.0 descriptors kept per 1,000 connections (limit 100, when it rises in")
    assert "it rose in every one of 3 rounds" in check.sentence


def test_in_flight_connections_are_noise_not_a_leak(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    table = rng.integers(0, 8, 10_000)  # 0-7 connections in flight at any reading
    check = _churn(tmp_path, lambda t: 12 + int(table[int(t * 4) % len(table)]))
    assert check.state == "pass", check.sentence


def test_a_level_held_for_a_while_and_released_only_warns(tmp_path: Path) -> None:
    # Resources held 5 s per connection (a server slow to let go) rise, then level off: not every round rises.
    check = _churn(tmp_path, lambda t: 12 + 20 * min(max(t - 10.0, 0.0), 5.0))
    assert check.state == "warn", check.sentence
    assert "rose in 1 of 3 rounds" in check.sentence


def test_no_churn_phase_is_not_judged_and_says_so(tmp_path: Path) -> None:
    run = CraftedRun(rss={"x": flat()}, fds={"x": lambda t: 12}, streams=leaving_streams("x", [0.01] * 10))
    (check,) = [c for c in judge_summary(analyse_run(load_run(run.write(tmp_path)))) if c.check == "churn_resources"]
    assert (check.state, check.sentence) == ("not judged", "not judged: no churn phase in this run")
    assert not check.required


def _stalled(tmp_path: Path, upstream_end_s: float | None) -> Check:
    stalled = [
        Stream(f"st-{i}", "x", 10.0 + i, 28.0, upstream_end_s, tokens_read=0, tokens_sent=50, behaviour="stalled")
        for i in range(3)
    ]
    run = CraftedRun(phases=PHASES, rss={"x": flat()}, streams=stalled + leaving_streams("x", [0.01] * 5))
    (check,) = [c for c in judge_summary(analyse_run(load_run(run.write(tmp_path)))) if c.check == "stalled_clients"]
    return check


def test_a_stalled_client_held_until_it_left_is_a_warning(tmp_path: Path) -> None:
    check = _stalled(tmp_path, None)
    assert check.state == "warn", check.sentence
    assert check.sentence.startswith("stalled clients held 17.0 s (median; limit 10 s): no send timeout let them go")
    assert "3 of 3 stalled clients held until they left" in check.sentence


def test_a_stalled_client_dropped_after_a_send_timeout_passes(tmp_path: Path) -> None:
    check = _stalled(tmp_path, 14.0)  # dropped (with its upstream) 2-4 s after it stopped reading
    assert check.state == "pass", check.sentence
    assert "0 of 3 stalled clients held until they left" in check.sentence
    assert "3 dropped by the server" in check.sentence


def test_holding_stalled_clients_can_be_configured_to_fail() -> None:
    figures = {
        "stalled": {
            "available": True,
            "judged_streams": 2,
            "hold_s": 20.0,
            "held_to_leave": 2,
            "dropped": 0,
            "window_s": 20.0,
            "cut_short": 1,
        }
    }
    assert check_stalled("x", figures, Limits(), 12.0).state == "warn"
    check = check_stalled("x", figures, Limits(stalled_state="fail"), 12.0)
    assert check.state == "fail"
    assert "1 client stream of any kind cut short by the server" in check.sentence


def test_stalled_clients_that_left_too_soon_are_not_judged(tmp_path: Path) -> None:
    short = [Stream("st-0", "x", 10.0, 14.0, None, tokens_read=0, tokens_sent=5, behaviour="stalled")]
    run = CraftedRun(phases=PHASES, rss={"x": flat()}, streams=short + leaving_streams("x", [0.01] * 5))
    (check,) = [c for c in judge_summary(analyse_run(load_run(run.write(tmp_path)))) if c.check == "stalled_clients"]
    assert check.state == "not judged"
    assert "too short to tell a send timeout from holding them forever (they must stay 12 s)" in check.sentence
