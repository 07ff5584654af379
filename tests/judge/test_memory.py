"""The memory checks named by cause, on crafted runs: a backlog under slow readers, growth per request."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.analyse.analysis import analyse_run
from harness.analyse.run_data import load_run
from harness.judge.check import Check
from harness.judge.judgement import judge_summary
from harness.judge.limits import Limits
from harness.judge.memory import check_backlog, check_per_request
from tests.runfolders import MIB, CraftedRun, Series, Stream, flat, leaving_streams, slow_readers, step

PHASES = (("warm-up", 0.0, 10.0), ("slow readers", 10.0, 25.0), ("burst", 25.0, 40.0), ("drain", 40.0, 50.0))
"""Slow readers connected 10-25 s; 15 s of fast requests with none connected (every 0.05 s: 300); a drain."""


def _streams(name: str, ahead_tokens: int = 20_000) -> list[Stream]:
    slow = list(slow_readers(name, 4, start_s=10.0, end_s=25.0, tokens_sent=ahead_tokens))
    fast = leaving_streams(name, [0.01] * 290, start_s=25.2, every_s=0.05)
    return slow + fast


def _ramp(start_s: float, end_s: float, total_bytes: float) -> Series:
    """Flat, rising by ``total_bytes`` between ``start_s`` and ``end_s``, then level (RSS never comes back)."""
    noise = flat()
    return lambda t: noise(t) + total_bytes * min(1.0, max(0.0, (t - start_s) / (end_s - start_s)))


def _checks(
    tmp_path: Path, rss: dict[str, Series], ahead_tokens: int = 20_000, **run: object
) -> dict[tuple[str, str], Check]:
    """``ahead_tokens``: what the upstream sent each slow reader (64 bytes a token: 1.2 MiB, as an unbounded buffer
    pulls; 1: no more than it read)."""
    streams = [stream for name in rss for stream in _streams(name, ahead_tokens)]
    folder = CraftedRun(phases=PHASES, rss=rss, streams=streams, **run).write(tmp_path)  # type: ignore[arg-type]
    checks = judge_summary(analyse_run(load_run(folder)))
    return {(check.target, check.check): check for check in checks}


def test_growth_per_request_fails_the_per_request_check_and_passes_the_backlog(tmp_path: Path) -> None:
    checks = _checks(tmp_path, {"grower": _ramp(25.0, 40.0, 29 * MIB)})
    per_request = checks[("grower", "growth_per_request")]
    assert per_request.state == "fail", per_request.sentence
    assert per_request.figure == pytest.approx(100 * MIB, rel=0.1)  # 29 MiB over 290 requests, per 1,000
    assert re.match(
        r"(99|10\d)\.\d MiB of RSS retained per 1,000 requests \(limit 1\.0 MiB\); RSS grew by 2", per_request.sentence
    )
    backlog = checks[("grower", "backlog_slow_readers")]
    assert backlog.state == "pass", backlog.sentence


def test_a_backlog_under_slow_readers_fails_the_backlog_check_and_passes_per_request(tmp_path: Path) -> None:
    checks = _checks(tmp_path, {"buffering": _ramp(10.0, 25.0, 30 * MIB)})
    backlog = checks[("buffering", "backlog_slow_readers")]
    assert backlog.state == "fail", backlog.sentence
    assert backlog.figure == pytest.approx(30 * MIB, rel=0.05)
    assert re.match(r"(29|30)\.\d MiB of RSS held for slow readers \(limit 16\.0 MiB\); RSS rose by ", backlog.sentence)
    assert "4 slow clients (7." in backlog.sentence  # 30 MiB over 4 slow clients
    per_request = checks[("buffering", "growth_per_request")]
    assert per_request.state == "pass", per_request.sentence


def test_flat_memory_passes_both(tmp_path: Path) -> None:
    checks = _checks(tmp_path, {"lazy": flat(noise_bytes=1 * MIB)})
    assert checks[("lazy", "backlog_slow_readers")].state == "pass"
    assert checks[("lazy", "growth_per_request")].state == "pass"


def test_a_warm_up_step_is_no_cause(tmp_path: Path) -> None:
    checks = _checks(tmp_path, {"lazy": step(30 * MIB, at_s=3.0)})
    assert checks[("lazy", "backlog_slow_readers")].state == "pass"
    assert checks[("lazy", "growth_per_request")].state == "pass"


def test_a_fall_is_never_called_growth(tmp_path: Path) -> None:
    checks = _checks(tmp_path, {"lazy": _ramp(25.0, 40.0, -8 * MIB)})
    sentence = checks[("lazy", "growth_per_request")].sentence
    assert "released per 1,000 requests" in sentence
    assert "RSS fell by 8." in sentence
    assert "grew" not in sentence
    assert "-" not in sentence


def test_a_profiled_target_is_judged_on_traced_memory_not_snapshot_steps(tmp_path: Path) -> None:
    snapshots = step(20 * MIB, at_s=12.0)  # a snapshot lifts RSS for good, during the slow readers
    checks = _checks(tmp_path, {"lazy": snapshots}, traced={"lazy": flat()})
    backlog = checks[("lazy", "backlog_slow_readers")]
    assert backlog.state == "pass", backlog.sentence
    assert "of traced memory" in backlog.sentence
    assert backlog.supporting["series"] == "traced_bytes"


def test_not_judged_says_the_true_reason() -> None:
    limits = Limits()
    no_slow = {"backlog": {"available": False, "reason": "no slow or stalled reader of x in this run"}}
    check = check_backlog("x", no_slow, limits)
    assert (check.state, check.sentence) == ("not judged", "not judged: no slow or stalled reader of x in this run")
    assert not check.required
    few = {"judged_series": "rss_bytes", "per_request": {"available": True, "requests": 12, "retained_bytes": 0.0}}
    check = check_per_request("x", few, limits)
    assert check.state == "not judged"
    assert check.sentence == (
        "not judged: 12 requests served after the warm-up with no slow reader connected, under the 30 needed"
    )


def test_the_relative_floor_raises_the_backlog_limit_of_a_big_process() -> None:
    figures = {
        "judged_series": "rss_bytes",
        "memory": {"baseline_rss_bytes": 400 * MIB},
        "backlog": {
            "available": True,
            "backlog_bytes": 60 * MIB,
            "held_bytes": 60 * MIB,
            "explained_bytes": 0.0,
            "requests": 10,
            "peak_at_s": 20.0,
            "peak_slow_clients": 5,
            "held_per_slow_client_bytes": 12 * MIB,
            "released_bytes": None,
            "slow_streams": 5,
        },
    }
    check = check_backlog("big", figures, Limits())
    assert check.state == "warn"
    assert "fail at 100.0 MiB = 25% of its 400.0 MiB baseline" in check.sentence
    assert check_backlog("big", figures, Limits(backlog_share=0.1)).state == "fail"


def test_a_small_backlog_still_rising_fails_and_a_buffer_that_filled_only_warns(tmp_path: Path) -> None:
    ramp = {"eager": _ramp(10.0, 25.0, 5 * MIB)}
    rising = _checks(tmp_path / "rising", ramp)[("eager", "backlog_slow_readers")]
    assert rising.state == "fail", rising.sentence
    assert "(limit 1.0 MiB while still rising, 16.0 MiB in any case)" in rising.sentence
    assert "was still rising at at least " in rising.sentence
    assert "at most 1.2 MiB to any one (4 slow streams; 512.0 KiB confirms a backlog)" in rising.sentence
    filled = _checks(tmp_path / "filled", {"pooled": _ramp(10.0, 13.0, 6 * MIB)})[("pooled", "backlog_slow_readers")]
    assert filled.state == "warn", filled.sentence
    assert "a buffer that filled, not a growing backlog" in filled.sentence


def test_a_rise_the_upstreams_records_show_no_backlog_for_is_not_theirs(tmp_path: Path) -> None:
    """A correct relay's heap grows while the load first rises; RSS alone reads it as a backlog still rising. The
    upstream sent the slow readers no more than they read, so the relay held nothing for them."""
    streams = _streams("bounded", ahead_tokens=1)
    folder = CraftedRun(phases=PHASES, rss={"bounded": _ramp(10.0, 25.0, 5 * MIB)}, streams=streams).write(tmp_path)
    figures = analyse_run(load_run(folder))["targets"]["bounded"]
    assert figures["run_ahead"]["streams"] == 4
    assert figures["run_ahead"]["at_peak_streams"] == 4
    check = check_backlog("bounded", figures, Limits())
    assert check.state == "pass", check.sentence
    assert check.sentence.startswith(
        "4.8 MiB of RSS rose while slow readers were connected, not held for them (a backlog fails at 16.0 MiB); "
    )
    assert (
        "by its records the upstream sent slow readers more than they read: 0 B in all to the 4 slow readers open "
        "at the peak (a backlog warns from 4.0 MiB), at most 0 B to any one (4 slow streams; 512.0 KiB confirms a "
        "backlog): the rise is not a growing backlog" in check.sentence
    )
    assert check.supporting["run_ahead_max_bytes"] == 0.0
    large = Limits(backlog_bytes=4 * MIB, backlog_share=0.0, backlog_warn_bytes=1 * MIB, backlog_rising_bytes=1 * MIB)
    assert check_backlog("bounded", figures, large).state == "warn"  # a rise this large: another cause
    assert check_backlog("bounded", figures, Limits(backlog_ahead_bytes=0.0)).state == "fail"
