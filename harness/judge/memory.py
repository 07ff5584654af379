"""The memory checks, named by their cause (figures: harness/analyse/memory_causes.py).

backlog_slow_readers  memory held while slow or stalled readers are connected, beyond what the requests served
                      meanwhile explain: fail at ``backlog`` (or ``backlog_share`` of the baseline), or at
                      ``backlog_rising`` when still rising at ``backlog_rate`` in the second half of their
                      stay and the upstream's records show it sent a slow reader ``backlog_ahead`` more than it read
                      (where they pair their streams exactly); else warn at ``backlog_warn``. Where those
                      records show the slow readers open at the peak were sent less than ``backlog_warn`` more
                      than they read in all, and none ``backlog_ahead``, the memory was not held for them: pass
                      (warn at ``backlog``: a large rise with another cause)
growth_per_request    memory retained per 1,000 requests served with no slow reader connected: fail at
                      ``per_request`` once the growth itself reaches ``per_request_min``
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.judge.check import Check, State
from harness.judge.limits import Limits
from harness.judge.words import SERIES, change, plural, size

__all__ = ["check_backlog", "check_per_request"]


def _not_judged(target: str, name: str, unit: str, why: str, *, required: bool = False) -> Check:
    return Check(target, name, "not judged", None, None, unit, f"not judged: {why}", required=required)


def check_backlog(target: str, figures: Mapping[str, Any], limits: Limits) -> Check:
    """``figures``: summary.json's target section (backlog, memory or traced_memory, judged_series)."""
    backlog = figures.get("backlog") or {}
    series = SERIES.get(str(figures.get("judged_series")), "memory")
    if not backlog.get("available"):
        return _not_judged(target, "backlog_slow_readers", "bytes", str(backlog.get("reason", "no figures")))
    memory = (figures.get("traced_memory") if series == "traced memory" else figures.get("memory")) or {}
    baseline = float(memory.get("baseline_traced_bytes", memory.get("baseline_rss_bytes")) or 0.0)
    relative = limits.backlog_share * baseline
    fail_at = max(limits.backlog_bytes, relative)
    limit_text = size(fail_at) + (
        f" = {limits.backlog_share:.0%} of its {size(baseline)} baseline" if relative > limits.backlog_bytes else ""
    )
    held = float(backlog["backlog_bytes"])
    per_client = backlog.get("held_per_slow_client_bytes")
    released = backlog.get("released_bytes")
    late_value = backlog.get("rising_slope_per_slow_client_bytes_per_s")
    late = None if late_value is None else float(late_value)
    rising_held = float(backlog.get("rising_backlog_bytes") or 0.0)
    rising = late is not None and late >= limits.backlog_rate_bytes_per_s
    ahead = figures.get("run_ahead") or {}
    ahead_max = float(ahead["max_bytes"]) if ahead.get("available") else None
    at_peak_value = ahead.get("at_peak_bytes") if ahead.get("available") else None
    at_peak = None if at_peak_value is None else float(at_peak_value)
    bounded_by_upstream = ahead_max is not None and ahead_max < limits.backlog_ahead_bytes
    not_theirs = bounded_by_upstream and at_peak is not None and at_peak < limits.backlog_warn_bytes
    each = per_client is not None and held > 0 and not not_theirs  # no amount "each" when it was not theirs
    supporting = [
        f"{series} {change(float(backlog['held_bytes']), up='rose by', down='fell by')} while they were connected, "
        f"{size(max(0.0, float(backlog['explained_bytes'])))} of it explained by "
        f"{plural(int(backlog['requests']), 'request')} at the per-request rate",
        f"peak at {float(backlog['peak_at_s']):.0f} s with {plural(int(backlog['peak_slow_clients']), 'slow client')}"
        + (f" ({size(float(per_client))} each)" if each and per_client is not None else ""),
    ]
    if rising and late is not None:
        supporting.append(
            f"{size(rising_held)} of it was still rising at at least {size(late)}/s per slow client late in their "
            f"stay (95% lower bound; {size(limits.backlog_rate_bytes_per_s)}/s confirms a growing backlog)"
        )
    else:
        supporting.append(
            f"no stay ended still rising at {size(limits.backlog_rate_bytes_per_s)}/s per slow client (95% lower "
            "bound): a buffer that filled, not a growing backlog"
        )
    if ahead_max is not None:
        peak_part = (
            f"{size(at_peak)} in all to the {plural(int(ahead['at_peak_streams']), 'slow reader')} open at the peak "
            f"(a backlog warns from {size(limits.backlog_warn_bytes)}), "
            if at_peak is not None
            else ""
        )
        supporting.append(
            f"by its records the upstream sent slow readers more than they read: {peak_part}at most "
            f"{size(ahead_max)} to any one ({plural(int(ahead['streams']), 'slow stream')}; "
            f"{size(limits.backlog_ahead_bytes)} confirms a backlog"
            + ("): the rise is not a growing backlog" if bounded_by_upstream and rising else ")")
        )
    rising = rising and not bounded_by_upstream
    if released is not None:
        supporting.append(f"after they left it {change(float(released), up='rose by', down='fell by')}")
    supporting.append(f"{plural(int(backlog['slow_streams']), 'slow-reader stream')}")
    state: State
    figure = f"{size(held)} of {series} held for slow readers" if held > 0 else f"no {series} held for slow readers"
    if not_theirs and held > 0:
        # The upstream's records bound what the relay could hold for them: the rise has another cause.
        figure = f"{size(held)} of {series} rose while slow readers were connected, not held for them"
        state = "warn" if held >= fail_at else "pass"
        limit, against = fail_at, f"(a backlog fails at {limit_text})"
    elif held >= fail_at:
        state, limit, against = "fail", fail_at, f"(limit {limit_text})"
    elif rising_held >= limits.backlog_rising_bytes and rising:
        state, limit = "fail", limits.backlog_rising_bytes
        against = f"(limit {size(limits.backlog_rising_bytes)} while still rising, {limit_text} in any case)"
    elif held >= limits.backlog_warn_bytes:
        state, limit, against = (
            "warn",
            limits.backlog_warn_bytes,
            f"(warn at {size(limits.backlog_warn_bytes)}, fail at {limit_text})",
        )
    else:
        state, limit, against = "pass", fail_at, f"(limit {limit_text})"
    sentence = f"{figure} {against}; " + "; ".join(supporting)
    return Check(
        target,
        "backlog_slow_readers",
        state,
        held,
        limit,
        "bytes",
        sentence,
        {
            "series": str(figures.get("judged_series")),
            "held_bytes": backlog.get("held_bytes"),
            "explained_bytes": backlog.get("explained_bytes"),
            "held_per_slow_client_bytes": per_client,
            "peak_slow_clients": backlog.get("peak_slow_clients"),
            "released_bytes": released,
            "rising_backlog_bytes": rising_held,
            "rising_slope_per_slow_client_bytes_per_s": late,
            "run_ahead_max_bytes": ahead_max,
            "run_ahead_at_peak_bytes": at_peak,
            "baseline_bytes": baseline,
        },
    )


def check_per_request(target: str, figures: Mapping[str, Any], limits: Limits) -> Check:
    """``figures``: summary.json's target section (per_request, judged_series)."""
    per_request = figures.get("per_request") or {}
    series = SERIES.get(str(figures.get("judged_series")), "memory")
    name = "growth_per_request"
    if not per_request.get("available"):
        return _not_judged(target, name, "bytes_per_1000_requests", str(per_request.get("reason", "no figures")))
    requests = int(per_request.get("requests") or 0)
    if requests < limits.per_request_min_requests:
        why = (
            f"{plural(requests, 'request')} served after the warm-up with no slow reader connected, "
            f"under the {limits.per_request_min_requests} needed"
        )
        return _not_judged(target, name, "bytes_per_1000_requests", why)
    per_1000 = float(per_request["per_1000_requests_bytes"])
    retained = float(per_request["retained_bytes"])
    kept = "retained" if per_1000 >= 0 else "released"
    figure = f"{size(abs(per_1000))} of {series} {kept} per 1,000 requests"
    detail = (
        f"{series} {change(retained)} over {plural(requests, 'request')} in "
        f"{float(per_request['seconds']):.0f} s with no slow reader connected"
    )
    grew_enough = retained >= limits.per_request_min_bytes
    state: State
    if per_1000 >= limits.per_request_bytes and grew_enough:
        state = "fail"
    elif per_1000 >= limits.per_request_bytes:
        state = "pass"
        detail += f", under the {size(limits.per_request_min_bytes)} that growth must reach to count"
    else:
        state = "pass"
    sentence = f"{figure} (limit {size(limits.per_request_bytes)}); {detail}"
    return Check(
        target,
        name,
        state,
        per_1000,
        limits.per_request_bytes,
        "bytes_per_1000_requests",
        sentence,
        {"series": str(figures.get("judged_series")), "retained_bytes": retained, "requests": requests},
    )
