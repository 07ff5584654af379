"""The cancellation checks of a target with an upstream (figures: harness/analyse/upstream.py, cancellation.py).

leaked_streams      upstream streams still open after the drain with their client gone: more than
                    ``leaked_streams`` fails
cancel_latency      p99 from a client leaving to its upstream stream closing; more than 1% of left streams
                    never closing upstream fails (the true p99 lies beyond the run)
tokens_after_leave  share of the tokens the upstream produced later than ``reaction_s`` (analyse/cancellation.py,
                    0.5 s) after their clients had left
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.judge.check import Check, State
from harness.judge.limits import Limits
from harness.judge.words import plural

__all__ = ["NEVER_CLOSED_SHARE", "cancellation_checks"]

NEVER_CLOSED_SHARE = 0.01
"""More left streams than this share never closed upstream: the true p99 is beyond the run, so it fails."""


def _not_judged(target: str, name: str, unit: str, why: str, required: bool) -> Check:
    return Check(target, name, "not judged", None, None, unit, f"not judged: {why}", required=required)


def _basis(upstream: Mapping[str, Any]) -> str:
    """'; basis id:header' (how the figures were paired, as the report's sentence names it)."""
    basis = str(upstream.get("basis") or "unknown")
    return f"basis {basis}"


def _snapshots(cancel: Mapping[str, Any]) -> str:
    count = int(cancel.get("left_during_snapshots") or 0)
    if not count:
        return ""
    return f"; {plural(count, 'stream')} left out: the client left while a tracemalloc snapshot stalled the target"


def _phases(phases: Sequence[Mapping[str, Any]]) -> str:
    """'by phase: reset wave p99 12 ms over 40; before-headers wave 12 of 12 never closed'."""
    parts = []
    for phase in phases:
        left = int(phase.get("left_streams") or 0)
        if not left:
            continue
        never = int(phase.get("never_closed") or 0)
        p99 = phase.get("latency_p99_ms")
        text = f"{phase.get('phase')} "
        if never:
            text += f"{never} of {left} never closed"
        elif p99 is not None:
            text += f"p99 {float(p99):.0f} ms over {left}"
        else:
            text += f"{left} left"
        parts.append(text)
    return ("; by phase: " + ", ".join(parts)) if len(parts) > 1 else ""


def _leaked(target: str, upstream: Mapping[str, Any], limits: Limits) -> Check:
    orphans = upstream.get("orphans_at_end")
    if orphans is None:
        why = f"the upstream's records give no count of open streams ({upstream.get('note', '')})"
        return _not_judged(target, "leaked_streams", "count", why, True)
    count = int(orphans)
    state: State = "fail" if count > limits.leaked_streams else "pass"
    clients = plural(int(upstream.get("client_streams") or 0), "client stream")
    sentence = (
        f"{plural(count, 'upstream stream')} still open after the drain with no client (limit "
        f"{limits.leaked_streams}); {_basis(upstream)}; {clients}"
        f", at most {int(upstream.get('peak_upstream_streams') or 0)} upstream streams open at once"
    )
    seconds = upstream.get("orphan_stream_seconds")
    if seconds is not None:
        sentence += f", {float(seconds):.1f} orphan stream-seconds"
    return Check(
        target,
        "leaked_streams",
        state,
        float(count),
        float(limits.leaked_streams),
        "count",
        sentence,
        {
            "basis": upstream.get("basis"),
            "orphan_stream_seconds": seconds,
            "peak_upstream_streams": upstream.get("peak_upstream_streams"),
            "upstream_open_at_end_kernel": upstream.get("upstream_open_at_end_kernel"),
        },
    )


def _why_no_left(cancel: Mapping[str, Any], clients: Mapping[str, Any], upstream: Mapping[str, Any]) -> str:
    left = int((clients.get("outcomes") or {}).get("left", 0))
    if not left:
        return "no client left a stream early in this run"
    if not cancel.get("available", True):
        reason = cancel.get("reason") or upstream.get("note") or "no stream matched"
        return f"{plural(left, 'client')} left early, but {reason}"
    return f"{plural(left, 'client')} left early, but none of their streams is in the upstream's records"


def _excess_latency(target: str, upstream: Mapping[str, Any], limits: Limits) -> Check:
    """The aggregate basis: nothing pairs a client with its upstream stream, so the longest stretch with more
    upstream streams open than clients connected stands for the latency."""
    name = "cancel_latency"
    excess = upstream.get("excess")
    if not excess:
        return _not_judged(target, name, "ms", f"the upstream kept no count of its own ({upstream.get('note')})", True)
    longest_ms = float(excess["longest_s"]) * 1000.0
    text = f"upstream streams outnumbered connected clients for {longest_ms:.0f} ms at the longest"
    rest = (
        f"{_basis(upstream)} (nothing to pair streams by); peak {int(excess['peak'])} beyond the clients, "
        f"{float(excess['stream_seconds']):.1f} orphan stream-seconds, {float(excess['seconds_above_zero']):.1f} s "
        f"above none"
    )
    support = {"peak_excess": excess["peak"], "stream_seconds": excess["stream_seconds"]}
    state: State = "pass"
    limit, against = limits.cancel_p99_ms, f"limit {limits.cancel_p99_ms:.0f} ms"
    if longest_ms > limits.cancel_p99_ms:
        state = "fail"
    elif longest_ms > limits.cancel_p99_warn_ms:
        state, limit = "warn", limits.cancel_p99_warn_ms
        against = f"warn above {limits.cancel_p99_warn_ms:.0f} ms, {against}"
    return Check(target, name, state, longest_ms, limit, "ms", f"{text} ({against}); {rest}", support)


def _latency(
    target: str,
    cancel: Mapping[str, Any],
    why: str | None,
    limits: Limits,
    upstream: Mapping[str, Any],
    phases: Sequence[Mapping[str, Any]],
) -> Check:
    name = "cancel_latency"
    if why is not None:
        return _not_judged(target, name, "ms", why, False)
    left = int(cancel["left_streams"])
    never = int(cancel.get("never_closed") or 0)
    p99 = cancel.get("latency_p99_ms")
    limit = f"limit {limits.cancel_p99_ms:.0f} ms"
    support = {"left_streams": left, "never_closed": never, "latency_p50_ms": cancel.get("latency_p50_ms")}
    if never > NEVER_CLOSED_SHARE * left:
        sentence = (
            f"{never} of {left} streams whose client left never closed upstream, so the p99 lies beyond the run "
            f"({limit}); {_basis(upstream)}{_snapshots(cancel)}{_phases(phases)}"
        )
        return Check(target, name, "fail", None, limits.cancel_p99_ms, "ms", sentence, support)
    if p99 is None:
        return _not_judged(target, name, "ms", f"no closed stream to time ({left} left)", True)
    text = f"p99 {float(p99):.0f} ms from a client leaving to its upstream closing"
    rest = (
        f"over {plural(left, 'left stream')}; p50 {float(cancel.get('latency_p50_ms') or 0):.0f} ms; "
        f"{_basis(upstream)}{_snapshots(cancel)}{_phases(phases)}"
    )
    if p99 > limits.cancel_p99_ms:
        return Check(target, name, "fail", float(p99), limits.cancel_p99_ms, "ms", f"{text} ({limit}); {rest}", support)
    if p99 > limits.cancel_p99_warn_ms:
        sentence = f"{text} (warn above {limits.cancel_p99_warn_ms:.0f} ms, {limit}); {rest}"
        return Check(target, name, "warn", float(p99), limits.cancel_p99_warn_ms, "ms", sentence, support)
    return Check(target, name, "pass", float(p99), limits.cancel_p99_ms, "ms", f"{text} ({limit}); {rest}", support)


def _after_leave(
    target: str, cancel: Mapping[str, Any], why: str | None, limits: Limits, upstream: Mapping[str, Any]
) -> Check:
    name = "tokens_after_leave"
    if why is not None:
        return _not_judged(target, name, "share", why, False)
    share = cancel.get("tokens_after_leave_share")
    produced = int(cancel.get("tokens_produced") or 0)
    if share is None:
        return _not_judged(target, name, "share", "the upstream produced no token on this target's streams", True)
    after = float(cancel.get("tokens_after_leave") or 0.0)
    reaction = cancel.get("reaction_s")
    when = f"over {float(reaction):g} s after" if reaction else "after"  # older runs counted from the leaving
    text = f"{share:.1%} of tokens produced {when} their clients left"
    rest = (
        f"{after:,.0f} of {produced:,} tokens; {int(cancel.get('undelivered_tokens') or 0):,} never read; "
        f"{_basis(upstream)}"
    )
    support = {"tokens_after_leave": after, "tokens_produced": produced}
    state: State
    if share > limits.after_leave_share:
        state, limit, against = "fail", limits.after_leave_share, f"limit {limits.after_leave_share:.1%}"
    elif share > limits.after_leave_warn_share:
        state, limit = "warn", limits.after_leave_warn_share
        against = f"warn above {limits.after_leave_warn_share:.1%}, limit {limits.after_leave_share:.1%}"
    else:
        state, limit, against = "pass", limits.after_leave_share, f"limit {limits.after_leave_share:.1%}"
    return Check(target, name, state, float(share), limit, "share", f"{text} ({against}); {rest}", support)


def cancellation_checks(target: str, figures: Mapping[str, Any], limits: Limits) -> list[Check]:
    """The three checks of a target that relays to the upstream (``figures``: its summary.json section)."""
    upstream = figures.get("upstream") or {}
    cancel = figures.get("cancellation") or {}
    clients = figures.get("clients") or {}
    names = (("leaked_streams", "count"), ("cancel_latency", "ms"), ("tokens_after_leave", "share"))
    if not upstream.get("available"):
        why = str(upstream.get("reason") or "no upstream figures")
        return [_not_judged(target, name, unit, why, True) for name, unit in names]
    if upstream.get("never_opened"):
        why = str(upstream.get("note") or "no upstream stream was ever opened by this target")
        return [_not_judged(target, name, unit, why, False) for name, unit in names]
    phases = figures.get("cancellation_phases") or []
    if upstream.get("basis") == "aggregate":
        why = f"{_basis(upstream)}: no stream of this target could be paired with its upstream stream"
        return [
            _leaked(target, upstream, limits),
            _excess_latency(target, upstream, limits),
            _not_judged(target, "tokens_after_leave", "share", why, False),
        ]
    no_left: str | None = None
    if not cancel.get("available") or not cancel.get("left_streams"):
        no_left = _why_no_left(cancel, clients, upstream)
    return [
        _leaked(target, upstream, limits),
        _latency(target, cancel, no_left, limits, upstream, phases),
        _after_leave(target, cancel, no_left, limits, upstream),
    ]
