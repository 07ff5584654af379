"""The comparison's noise rule: Mann-Whitney U on per-stream values, Holm's correction, large and significant."""

from __future__ import annotations

import numpy as np

from harness.report.compare_stats import CompareLimits, compare_values, holm

LIMITS = CompareLimits()


def test_two_samples_of_one_distribution_are_not_a_change() -> None:
    rng = np.random.default_rng(7)
    comparisons = [
        compare_values(rng.lognormal(2, 0.5, 60), rng.lognormal(2, 0.5, 60), LIMITS.large_ms, LIMITS) for _ in range(20)
    ]
    corrected = holm(comparisons, LIMITS.alpha)
    assert not any(c.marked for c in corrected)
    assert all(c.p_adjusted is not None and c.p_adjusted >= c.p_value for c in corrected if c.p_value is not None)


def test_a_shift_of_300_ms_is_large_significant_and_worse() -> None:
    rng = np.random.default_rng(8)
    before = rng.normal(20, 3, 30)
    after = before + 300
    (result,) = holm([compare_values(before, after, LIMITS.large_ms, LIMITS)], LIMITS.alpha)
    assert result.marked
    assert result.direction() == "worse"
    assert (result.n_reference, result.n_other) == (30, 30)
    assert result.change is not None
    assert 290 < result.change < 310


def test_significant_but_small_is_not_marked() -> None:
    # 10,000 streams make a 2 ms shift significant; it is not large (below 10 ms and 25%)
    rng = np.random.default_rng(9)
    before = rng.normal(100, 5, 10_000)
    (result,) = holm([compare_values(before, before + 2, LIMITS.large_ms, LIMITS)], LIMITS.alpha)
    assert result.significant
    assert not result.large
    assert not result.marked


def test_holm_corrects_for_the_number_of_figures() -> None:
    rng = np.random.default_rng(10)
    base = rng.normal(50, 10, 12)
    moved = compare_values(base, base * 1.9, LIMITS.large_ms, LIMITS)
    assert moved.p_value is not None
    alone = holm([moved], LIMITS.alpha)[0]
    crowd = holm([moved] * 40, LIMITS.alpha)[0]
    assert alone.p_adjusted == moved.p_value
    assert crowd.p_adjusted is not None
    assert crowd.p_adjusted > moved.p_value


def test_too_few_streams_are_not_tested() -> None:
    (result,) = holm([compare_values([1.0, 2.0], [500.0, 600.0], LIMITS.large_ms, LIMITS)], LIMITS.alpha)
    assert result.p_value is None
    assert not result.marked
    equal = compare_values([5.0] * 10, [5.0] * 10, LIMITS.large_ms, LIMITS)
    assert equal.p_value == 1.0
