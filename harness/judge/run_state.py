"""The checks on the run itself and on each target's life: only a finished run, with live targets that delivered
tokens, can be judged.

    run_complete      meta.json says ``complete`` and a drain phase ran; else not judged, and the run with it
    target_alive      no ``target_died`` event for the target: one fails
    tokens_delivered  its clients read at least one token; none: not judged, and the run with it
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.judge.check import RUN, Check
from harness.judge.words import plural

__all__ = ["check_alive", "check_run", "check_tokens"]


def check_run(run: Mapping[str, Any]) -> Check:
    """``run``: summary.json's ``run`` section."""
    status = str(run.get("status") or "unknown")
    if status == "running":
        why = "meta.json still says 'running': the run was killed before it could finish"
    elif status != "complete":
        why = f"the run ended as {status!r}, not 'complete': it was stopped before its phases ended"
    elif not run.get("drained", True):
        why = "the run has no drain phase, so nothing shows what stayed open once every client had gone"
    else:
        phases = len(run.get("phases") or [])
        took = float(run.get("duration_s") or 0)
        sentence = f"the run finished all {plural(phases, 'phase')}, drain included, in {took:.0f} s"
        return Check(RUN, "run_complete", "pass", 1.0, 1.0, "state", sentence, {"status": status})
    return Check(RUN, "run_complete", "not judged", None, 1.0, "state", f"not judged: {why}", {"status": status}, True)


def check_alive(target: str, figures: Mapping[str, Any]) -> Check:
    process = figures.get("process") or {}
    if process.get("died"):
        at = process.get("died_at_s")
        when = f" at {float(at):.1f} s" if at is not None else ""
        detail = str(process.get("detail") or "").rstrip(".")
        sentence = f"its process died{when}, before the run ended" + (f": {detail}" if detail else "")
        return Check(target, "target_alive", "fail", 0.0, 1.0, "state", sentence, {"died_at_s": at})
    return Check(target, "target_alive", "pass", 1.0, 1.0, "state", "its process lived through the run", {})


def check_tokens(target: str, figures: Mapping[str, Any]) -> Check:
    clients = figures.get("clients") or {}
    if not clients.get("available"):
        why = str(clients.get("reason") or "no client streams were recorded")
        return Check(target, "tokens_delivered", "not judged", None, 1.0, "count", f"not judged: {why}", {}, True)
    tokens = int(clients.get("tokens_delivered") or 0)
    streams = int(clients.get("streams") or 0)
    outcomes: Mapping[str, int] = clients.get("outcomes") or {}
    spread = ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items()))
    if tokens == 0:
        sentence = (
            f"not judged: no client received a token: 0 tokens over {plural(streams, 'stream')} ({spread}), "
            "so no other figure of this target means anything"
        )
        return Check(target, "tokens_delivered", "not judged", 0.0, 1.0, "count", sentence, dict(outcomes), True)
    sentence = f"{tokens:,} tokens delivered (at least 1 needed) over {plural(streams, 'stream')} ({spread})"
    return Check(target, "tokens_delivered", "pass", float(tokens), 1.0, "count", sentence, dict(outcomes))
