"""What a comparison calls a change beyond noise.

For figures that rest on per-stream values (times to first byte and token, token gaps, cancellation latencies,
tokens produced after a client left) each run after the first is tested against the first with a two-sided
Mann-Whitney U test on the per-stream values, and the p-values of every test on the page are corrected together
(Holm's step-down method, which holds the chance of any false alarm on the page at ``alpha``). A change is marked
only when it is both significant after correction and large: the median moved by at least ``large_share`` of the
reference median and by at least the figure's absolute floor (``large_ms`` for times). "Large" is what stands in
for run-to-run noise: per-stream values of one run share its machine's load, so the test alone would call a busy
moment a regression. Single figures per run
(memory growth, orphans at the end) have no per-run noise estimate from one run each: their change is shown, never
marked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats  # type: ignore[import-untyped]

from harness.errors import UsageError

__all__ = ["CompareLimits", "Comparison", "compare_values", "holm"]


@dataclass(frozen=True, slots=True)
class CompareLimits:
    alpha: float = 0.05
    """Chance of marking any figure on the page when nothing changed within the runs (after correction)."""
    large_share: float = 0.5
    """A marked change moves the median by at least this share of the reference median..."""
    large_ms: float = 20.0
    """...and, for times, by at least this many milliseconds. These two stand in for the run-to-run noise a test on
    one run per side cannot see (the load of the machine shifts every stream of a run alike): measured on a shared
    2-core machine, four identical runs of one relay had time-to-first-token medians of 3.0 to 5.0 ms, the per-stream
    test telling them apart at p = 5e-22, and a first run on a busy moment moved it by more than 10 ms and 25%."""
    large_tokens: float = 1.0
    """...and, for token counts, by at least this many tokens per stream."""
    min_samples: int = 5
    """Fewer per-stream values than this on either side: no test (shown as such)."""

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise UsageError(f"--alpha must be a probability between 0 and 1, but got {self.alpha!r}")
        if not (self.large_share >= 0 and math.isfinite(self.large_share)):
            raise UsageError(f"--min-change must be a share >= 0 such as 50% or 0.5, but got {self.large_share!r}")
        if not (self.large_ms >= 0 and math.isfinite(self.large_ms)):
            raise UsageError(f"--min-change-time must be a duration >= 0, but got {self.large_ms!r} ms")


@dataclass(frozen=True, slots=True)
class Comparison:
    n_reference: int
    n_other: int
    median_reference: float | None
    median_other: float | None
    p_value: float | None
    """Mann-Whitney U, two-sided; None when either side has too few values."""
    p_adjusted: float | None = None
    significant: bool = False
    large: bool = False

    @property
    def change(self) -> float | None:
        if self.median_reference is None or self.median_other is None:
            return None
        return self.median_other - self.median_reference

    @property
    def marked(self) -> bool:
        """Beyond noise: significant after correction and large."""
        return self.significant and self.large

    def direction(self) -> str:
        """'worse' (higher: every compared figure is lower-is-better), 'better', or '' when not marked."""
        if not self.marked or self.change is None:
            return ""
        return "worse" if self.change > 0 else "better"


def _clean(values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    kept: np.ndarray = array[np.isfinite(array)]
    return kept


def compare_values(
    reference: Sequence[float] | np.ndarray, other: Sequence[float] | np.ndarray, floor: float, limits: CompareLimits
) -> Comparison:
    """The uncorrected comparison of two runs' per-stream values; ``floor`` is the figure's absolute 'large' step."""
    ref, oth = _clean(reference), _clean(other)
    med_ref = float(np.median(ref)) if len(ref) else None
    med_oth = float(np.median(oth)) if len(oth) else None
    p_value = None
    if len(ref) >= limits.min_samples and len(oth) >= limits.min_samples:
        if np.ptp(np.concatenate([ref, oth])) == 0:
            p_value = 1.0  # every value equal: no difference to find (scipy would warn)
        else:
            p_value = float(stats.mannwhitneyu(ref, oth, alternative="two-sided").pvalue)
    large = False
    if med_ref is not None and med_oth is not None:
        step = abs(med_oth - med_ref)
        large = step >= floor and step >= limits.large_share * abs(med_ref)
    return Comparison(len(ref), len(oth), med_ref, med_oth, p_value, large=large)


def holm(comparisons: Sequence[Comparison], alpha: float) -> list[Comparison]:
    """The same comparisons with Holm-adjusted p-values and ``significant`` set; untested ones stay as they are."""
    tested = sorted((c.p_value, i) for i, c in enumerate(comparisons) if c.p_value is not None)
    adjusted: dict[int, float] = {}
    running = 0.0
    m = len(tested)
    for rank, (p, index) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    result = []
    for index, comparison in enumerate(comparisons):
        if index not in adjusted:
            result.append(comparison)
            continue
        p_adj = adjusted[index]
        result.append(
            Comparison(
                comparison.n_reference,
                comparison.n_other,
                comparison.median_reference,
                comparison.median_other,
                comparison.p_value,
                p_adj,
                p_adj < alpha,
                comparison.large,
            )
        )
    return result
