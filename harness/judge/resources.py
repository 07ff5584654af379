"""Per-connection checks: resources kept under churn, and clients that read nothing.

churn_resources  descriptors, threads or asyncio tasks kept per 1,000 connections of the churn phase: fails at
                 ``churn_kept`` when the count also rose in every round after the first (a leak, not noise)
stalled_clients  how long the server keeps a client that reads nothing (and its upstream) open: longer than
                 ``stalled_hold`` is ``stalled_state`` (a warning by default: a policy, not always a bug)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.judge.check import Check, State
from harness.judge.limits import Limits
from harness.judge.words import plural

__all__ = ["check_churn", "check_stalled"]


def check_churn(target: str, figures: Mapping[str, Any], limits: Limits) -> Check:
    churn = figures.get("churn") or {}
    name, unit = "churn_resources", "per_1000_connections"
    if not churn.get("available"):
        return Check(target, name, "not judged", None, None, unit, f"not judged: {churn.get('reason', 'no figures')}")
    connections = int(churn.get("connections") or 0)
    resources = [r for r in churn.get("resources") or [] if r.get("kept_per_1000_connections") is not None]
    if not resources:
        why = f"no client connected to it in the churn phase after its first round ({connections} connections)"
        return Check(target, name, "not judged", None, None, unit, f"not judged: {why}", required=True)
    rounds = int(churn.get("rounds") or 0)

    def leaking(resource: Mapping[str, Any]) -> bool:
        return int(resource["rises"]) == rounds - 1

    worst = max(resources, key=lambda r: (leaking(r), float(r["kept_per_1000_connections"])))
    per_1000 = float(worst["kept_per_1000_connections"])
    rose = leaking(worst)
    over = per_1000 >= limits.churn_kept_per_1000
    state: State = "fail" if over and rose else "warn" if over else "pass"
    levels = " -> ".join(f"{level:g}" for level in worst["levels"])
    how = f"rose in every one of {rounds - 1} rounds" if rose else f"rose in {worst['rises']} of {rounds - 1} rounds"
    others = "; ".join(
        f"{r['resource']} {float(r['kept_per_1000_connections']):.1f}" for r in resources if r is not worst
    )
    sentence = (
        f"{per_1000:.1f} {worst['resource']} kept per 1,000 connections (limit {limits.churn_kept_per_1000:g}, "
        f"when it rises in every round); it {how} ({levels}) over {plural(connections, 'connection')} in "
        f"{churn.get('phase')}"
    )
    if others:
        sentence += f"; per 1,000 connections also {others}"
    supporting: dict[str, float | int | str | None] = {
        f"{r['resource'].replace(' ', '_')}_kept_per_1000": r["kept_per_1000_connections"] for r in resources
    }
    return Check(
        target,
        name,
        state,
        per_1000,
        limits.churn_kept_per_1000,
        unit,
        sentence,
        {**supporting, "connections": connections},
    )


def check_stalled(target: str, figures: Mapping[str, Any], limits: Limits, min_window_s: float) -> Check:
    stalled = figures.get("stalled") or {}
    name, unit = "stalled_clients", "s"
    if not stalled.get("available"):
        return Check(target, name, "not judged", None, None, unit, f"not judged: {stalled.get('reason', 'no figures')}")
    cut = int(stalled.get("cut_short") or 0)
    cut_text = f"{plural(cut, 'client stream')} of any kind cut short by the server"
    if not stalled.get("judged_streams"):
        window = stalled.get("window_s")
        if window is not None and float(window) < min_window_s:
            why = (
                f"its stalled clients stayed {float(window):.1f} s at most, too short to tell a send timeout from "
                f"holding them forever (they must stay {min_window_s:.0f} s)"
            )
        else:
            why = "none of its stalled clients' streams is in the upstream's records, so nothing shows when it let go"
        return Check(target, name, "not judged", None, None, unit, f"not judged: {why}; {cut_text}", {"cut_short": cut})
    hold = float(stalled["hold_s"])
    judged = int(stalled["judged_streams"])
    held, dropped = int(stalled["held_to_leave"]), int(stalled["dropped"])
    supporting = {"held_to_leave": held, "dropped": dropped, "judged_streams": judged, "cut_short": cut}
    detail = (
        f"{held} of {judged} stalled clients held until they left after {float(stalled['window_s']):.0f} s at most, "
        f"{dropped} dropped by the server; {cut_text}"
    )
    if hold > limits.stalled_hold_s:
        sentence = (
            f"stalled clients held {hold:.1f} s (median; limit {limits.stalled_hold_s:.0f} s): no send timeout let "
            f"them go; {detail}"
        )
        return Check(target, name, limits.stalled_state, hold, limits.stalled_hold_s, unit, sentence, supporting)
    sentence = (
        f"stalled clients held {hold:.1f} s (median; limit {limits.stalled_hold_s:.0f} s) before the server let "
        f"them go; {detail}"
    )
    return Check(target, name, "pass", hold, limits.stalled_hold_s, unit, sentence, supporting)
