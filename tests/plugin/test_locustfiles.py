"""The scenarios, run as users run them (``locust -f locustfiles/X.py --headless``), shortened by a flag: the
session's ``bundled_runs`` (tests/conftest.py), one run of each at scale 0.3, side by side.

Checked from the run folder: the run completes and stops every process it started (the fixture asserts exit 0 and
no process left); every stream has its own id; every target got the same users; clients leave where the scenario
put them; slow readers read at the pace asked for; nobody is connected during the drain.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.support import LocustRun

TARGETS = {"eager", "lazy", "bounded"}


def scenario_run(
    bundled_runs: dict[str, LocustRun], name: str
) -> tuple[LocustRun, list[dict[str, str]], dict[str, tuple[float, float]]]:
    run = bundled_runs[name]
    meta = run.meta()
    assert meta["status"] == "complete"
    assert {target["name"] for target in meta["targets"]} == TARGETS | {f"upstream@{name}" for name in TARGETS}
    clients = run.table("clients")
    phases = phase_windows(run.table("events"))
    assert clients
    ids = [row["stream_id"] for row in clients]
    assert all(ids)
    assert len(set(ids)) == len(ids)
    assert {row["target"] for row in clients} == TARGETS
    assert {row["outcome"] for row in clients} <= {"completed", "left"}, Counter(row["error"] for row in clients)
    drain_start = phases["drain"][0]
    # Locust stops the last users at the drain's first tick (within some ms); then nobody is connected.
    assert max(float(row["end"]) for row in clients) <= drain_start + 0.5
    assert max(float(row["start"]) for row in clients) <= drain_start + 0.5
    return run, clients, phases


def phase_windows(events: list[dict[str, str]]) -> dict[str, tuple[float, float]]:
    starts = {row["name"]: float(row["t"]) for row in events if row["kind"] == "phase_start"}
    ends = {row["name"]: float(row["t"]) for row in events if row["kind"] == "phase_end"}
    return {name: (start, ends[name]) for name, start in starts.items()}


def assert_even_spread(clients: list[dict[str, str]], behaviour: str) -> None:
    per_target = Counter(row["target"] for row in clients if row["behaviour"] == behaviour)
    assert set(per_target) == TARGETS, (behaviour, per_target)
    low, high = min(per_target.values()), max(per_target.values())
    assert high - low <= max(3, high // 3), (behaviour, per_target)


def within(row: dict[str, str], window: tuple[float, float], slack_s: float = 0.3) -> bool:
    return window[0] - slack_s <= float(row["start"]) <= window[1] + slack_s


@pytest.mark.slow
@pytest.mark.timeout(240)  # the first to ask makes the session's bundled runs
def test_disconnects(bundled_runs: dict[str, LocustRun]) -> None:
    run, clients, phases = scenario_run(bundled_runs, "disconnects")
    assert list(phases) == [
        "warm-up",
        "reset wave",
        "close wave",
        "before-headers wave",
        "silent-upstream wave",
        "silent-before-headers wave",
        "churn",
        "drain",
    ]
    # Each phase set the upstreams' defaults: endless streams in the leave waves, silent ones in the silent waves,
    # the stack flags' values (200 tokens) where the phase declared nothing.
    behaviours = {row["name"]: row["detail"] for row in run.table("events") if row["kind"] == "upstream_behaviour"}
    assert set(behaviours) == {"test_start", *phases}
    assert "upstream_warning" not in {row["kind"] for row in run.table("events")}
    for name in ("reset wave", "close wave", "before-headers wave", "churn"):
        assert behaviours[name].startswith("tokens=1000000 "), behaviours[name]
    assert "first_token_delay=600" in behaviours["silent-upstream wave"]
    assert "header_delay=600" in behaviours["silent-before-headers wave"]
    assert behaviours["drain"].startswith("tokens=200 ")
    assert behaviours["drain"].endswith("declared: none")
    silent = [row for row in clients if row["behaviour"] == "fast+leave_after_seconds:1s:reset"]
    headers_then_nothing = [row for row in silent if within(row, phases["silent-upstream wave"], slack_s=0)]
    nothing = [row for row in silent if within(row, phases["silent-before-headers wave"], slack_s=0)]
    assert headers_then_nothing
    assert nothing
    assert all(row["outcome"] == "left" and row["tokens"] == "0" for row in silent)
    assert any(row["first_byte"] != "" for row in headers_then_nothing)
    assert all(row["first_byte"] == "" for row in nothing)
    waves = {
        "fast+leave_after_tokens:5:reset": ("reset wave", "after_tokens", "reset"),
        "fast+leave_after_tokens:5:close": ("close wave", "after_tokens", "close"),
        "fast+leave_before_headers:reset": ("before-headers wave", "before_headers", "reset"),
    }
    for behaviour, (phase, when, how) in waves.items():
        rows = [row for row in clients if row["behaviour"] == behaviour]
        assert rows, behaviour
        assert all(within(row, phases[phase]) for row in rows), behaviour
        left = [row for row in rows if row["leave_when"] == when]
        # The rest were stopped by Locust at the wave's end (user_stopped): on a loaded machine gevent's
        # cooperative connect() yields, and the stop can land there, before the planned leave.
        others = Counter(row["leave_when"] for row in rows if row["leave_when"] != when)
        assert set(others) <= {"user_stopped"}, others
        assert len(left) >= len(rows) * 0.5, Counter(row["leave_when"] for row in rows)
        assert all(row["outcome"] == "left" and row["leave_how"] == how for row in left)
        if when == "after_tokens":
            assert all(int(row["tokens"]) >= 5 for row in left)
        else:
            assert all(row["first_byte"] == "" and row["status"] == "0" for row in left)
        assert_even_spread(clients, behaviour)
    warm = [row for row in clients if row["behaviour"] == "fast"]
    assert warm
    assert all(within(row, phases["warm-up"]) for row in warm)


@pytest.mark.slow
@pytest.mark.timeout(240)  # the first to ask makes the session's bundled runs
def test_slow_readers(bundled_runs: dict[str, LocustRun]) -> None:
    _, clients, phases = scenario_run(bundled_runs, "slow_readers")  # its byte-paced readers at 2 KiB/s
    by_behaviour = Counter(row["behaviour"] for row in clients)
    assert {"fast", "paced:2048B/s", "paced:2tok/s", "stalled"} <= set(by_behaviour), by_behaviour
    for behaviour in ("paced:2048B/s", "paced:2tok/s", "stalled"):
        assert_even_spread(clients, behaviour)
        assert all(within(row, phases["slow readers"]) for row in clients if row["behaviour"] == behaviour)
    for row in clients:
        if row["behaviour"] == "stalled":
            assert row["tokens"] == "0"
            assert row["leave_when"] == "user_stopped"
        elif row["behaviour"] == "paced:2048B/s":
            seconds = float(row["end"]) - float(row["first_byte"])
            # A quarter second's worth may be read at once at the start; the rest at the pace.
            assert 2048 * seconds * 0.75 <= int(row["bytes"]) <= 2048 * (seconds + 0.25) * 1.1, row
        elif row["behaviour"] == "paced:2tok/s":
            seconds = float(row["end"]) - float(row["first_token"])
            assert 2 * seconds * 0.75 <= int(row["tokens"]) <= 2 * seconds + 2, row


@pytest.mark.slow
@pytest.mark.timeout(240)  # the first to ask makes the session's bundled runs
def test_mixed(bundled_runs: dict[str, LocustRun]) -> None:
    _, clients, phases = scenario_run(bundled_runs, "mixed")
    behaviours = {row["behaviour"] for row in clients}
    assert behaviours >= {
        "fast",
        "paced:1024B/s",
        "stalled+leave_after_seconds:8s:close",
        "fast+leave_after_tokens:12:reset",
        "paced:2tok/s+leave_after_seconds:1.5s:close",
        "fast+leave_before_headers:reset",
        "fast+leave_after_tokens:3:reset",
    }, behaviours
    burst = [row for row in clients if row["behaviour"] == "fast+leave_after_tokens:3:reset"]
    assert all(within(row, phases["burst of disconnects"]) for row in burst)
    for row in clients:
        if row["leave_when"] == "after_seconds":
            planned = 8.0 if row["behaviour"].startswith("stalled") else 1.5
            assert float(row["end"]) - float(row["start"]) == pytest.approx(planned, abs=0.5), row
