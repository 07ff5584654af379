"""Pacing on a simulated clock: waits, read sizes, and the pace a reader following the plans achieves."""

from __future__ import annotations

import pytest

from harness.errors import UsageError
from harness.load.pacing import Pace, TokenBucket


@pytest.mark.parametrize(
    ("text", "rate", "unit"),
    [
        ("1KiB/s", 1024, "bytes"),
        ("512B/s", 512, "bytes"),
        ("4096/s", 4096, "bytes"),
        ("2 MB / s", 2_000_000, "bytes"),
        ("5tok/s", 5, "tokens"),
        ("0.5 tokens/s", 0.5, "tokens"),
    ],
)
def test_parse(text: str, rate: float, unit: str) -> None:
    pace = Pace.parse(text)
    assert (pace.rate_per_s, pace.unit) == (rate, unit)
    assert Pace.parse(str(pace)) == pace


@pytest.mark.parametrize("text", ["", "fast", "1KiB", "0B/s", "0tok/s", "-5tok/s", "5 furlongs/s", "abc/s"])
def test_parse_rejects_naming_the_value(text: str) -> None:
    with pytest.raises(UsageError, match="--read-pace") as error:
        Pace.parse(text, what="--read-pace")
    assert repr(text) in str(error.value)


def simulate_reader(bucket: TokenBucket, duration_s: float, supply_per_read: int | None = None) -> tuple[int, int]:
    """Follow the bucket's plans on a fake clock; return (units read, reads). The server always has data."""
    now, taken, reads = 0.0, 0, 0
    while True:
        plan = bucket.plan(now)
        now += plan.wait_s
        if now > duration_s:
            return taken, reads
        amount = plan.max_units if supply_per_read is None else min(plan.max_units, supply_per_read)
        bucket.spend(amount, now)
        taken += amount
        reads += 1


@pytest.mark.parametrize("rate", [100.0, 1024.0, 65536.0, 1_000_000.0])
def test_byte_pace_is_kept_over_time(rate: float) -> None:
    bucket = TokenBucket.for_pace(Pace(rate), 0.0, read_interval_s=0.25)
    taken, reads = simulate_reader(bucket, 20.0)
    # At most one full bucket ahead of the pace, never behind it by more than one read.
    assert rate * 20.0 - bucket.burst <= taken <= rate * 20.0 + bucket.burst
    assert reads >= 20.0 / 0.25 * 0.9 or bucket.burst == 65536


def test_first_read_is_not_delayed_and_reads_are_spaced() -> None:
    bucket = TokenBucket.for_pace(Pace(4096), 0.0, read_interval_s=1.0)
    assert bucket.burst == 4096
    first = bucket.plan(0.0)
    assert first.wait_s == 0.0
    assert first.max_units == 4096
    bucket.spend(4096, 0.0)
    assert bucket.plan(0.0).wait_s == pytest.approx(1.0)
    assert bucket.plan(0.5).wait_s == pytest.approx(0.5)


def test_short_reads_only_spend_what_they_took() -> None:
    # The server had less than asked: the reader may read again sooner, but never beats the pace.
    bucket = TokenBucket.for_pace(Pace(1000), 0.0, read_interval_s=1.0)
    taken, reads = simulate_reader(bucket, 10.0, supply_per_read=100)
    assert taken <= 1000 * 10.0 + bucket.burst
    assert reads > 10


def test_token_pace_one_at_a_time() -> None:
    bucket = TokenBucket.for_pace(Pace(5, "tokens"), 0.0)
    assert bucket.burst == 1
    taken, _ = simulate_reader(bucket, 10.0)
    assert 49 <= taken <= 51


def test_idle_time_does_not_bank_more_than_one_read() -> None:
    bucket = TokenBucket.for_pace(Pace(100), 0.0, read_interval_s=1.0)
    bucket.spend(100, 0.0)
    assert bucket.level(3600.0) == 100
    assert bucket.plan(3600.0).max_units == 100


def test_read_size_limits() -> None:
    assert TokenBucket.for_pace(Pace(1), 0.0).burst == 1
    assert TokenBucket.for_pace(Pace(10_000_000), 0.0, max_read_bytes=65536).burst == 65536


def test_bad_bucket_arguments() -> None:
    with pytest.raises(ValueError, match="rate_per_s"):
        TokenBucket(0, 1, 0.0)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(1, 0, 0.0)
