"""The master's side of ``harness agent``: fetch an agent's rows and write them into the master's run folder.

``AgentClient`` speaks the agent's two routes (``/samples?cursor=N``, ``/meta``) with plain urllib and a short
timeout, so it works unchanged in the gevent-patched Locust process. ``AgentFeed`` polls one agent for one of the
master's targets: it keeps the agent's cursor (so no row is fetched twice or missed), renames the agent's target
to the master's, and appends the rows to the master's samples.csv, connections.csv and stats.csv, and the agent's
incidents to events.csv.

Rows keep the agent's ``t``: its clock, not the master's. Each answer carries the agent's ``now``; the feed
estimates the skew as ``now`` minus the midpoint of the request on the master's clock (accurate to half the
round trip) and records it, so a reader can shift the rows if the hosts' clocks disagree by more than the
sampling interval. Hosts synchronised by NTP normally agree within a few ms.

An agent that does not answer does not stop the run: the feed writes ``agent_unreachable`` once, keeps trying,
writes ``agent_recovered`` when it answers again, and then fetches the rows the agent kept meanwhile (it keeps
its recent rows in memory and all of them in its own run folder).

``AgentPoller`` polls every feed of a run in one thread of its own, every ``poll_s``: not in the sampler's ticks,
since an agent far away must not hold them.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from harness.errors import TargetError, UsageError
from harness.runfolder import RunFolder

__all__ = ["FED_TABLES", "AgentAnswer", "AgentClient", "AgentFeed", "AgentPoller"]

FED_TABLES = ("samples", "connections", "stats")
"""The agent's tables copied into the master's (with the target renamed); its ``events`` are copied too."""


@dataclass(frozen=True, slots=True)
class AgentAnswer:
    """One ``/samples`` answer, with when it was asked and answered on the master's clock."""

    tables: dict[str, list[dict[str, Any]]]
    agent_now: float
    """The agent's clock (epoch s) when it answered."""
    run: str | None
    """The agent's run folder name: a new one means the agent restarted."""
    cursor: int | None
    """Pass back as ``cursor`` to get only newer rows; None from an agent without cursors."""
    sent_at: float
    received_at: float

    @property
    def round_trip_s(self) -> float:
        return self.received_at - self.sent_at

    @property
    def clock_offset_s(self) -> float:
        """Agent clock minus master clock, within +/- half the round trip."""
        return self.agent_now - (self.sent_at + self.received_at) / 2


class AgentClient:
    """Talks to one ``harness agent`` over HTTP; every error is a TargetError naming the agent's URL."""

    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"agent URL must look like http://HOST:PORT, but got {url!r}")
        if not timeout_s > 0:
            raise UsageError(f"agent timeout must be > 0 seconds, but got {timeout_s!r}")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"<AgentClient {self.url}>"

    def _get(self, path: str) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=self.timeout_s) as response:
                payload = json.load(response)
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace").strip()
            raise TargetError(f"agent at {self.url} answered GET {path} with {error.code}: {detail}") from error
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise TargetError(
                f"agent at {self.url} did not answer GET {path} within {self.timeout_s:g} s: {reason}"
            ) from error
        except ValueError as error:
            raise TargetError(f"agent at {self.url} sent a body that is not JSON for GET {path}") from error
        if not isinstance(payload, dict):
            raise TargetError(f"agent at {self.url} sent {type(payload).__name__} for GET {path}, expected an object")
        return payload

    def samples(self, *, cursor: int | None = None, since: float | None = None) -> AgentAnswer:
        """The rows the agent kept after ``cursor`` (and with ``t`` > ``since``); all it keeps without either."""
        query = {key: value for key, value in (("cursor", cursor), ("since", since)) if value is not None}
        path = "/samples" + (f"?{urlencode(query)}" if query else "")
        sent_at = time.time()
        payload = self._get(path)
        received_at = time.time()
        tables = payload.get("tables")
        if not isinstance(tables, dict) or not isinstance(payload.get("now"), int | float):
            raise TargetError(f"agent at {self.url} answered GET {path} without 'now' and 'tables'")
        cursor_seen = payload.get("cursor")
        return AgentAnswer(
            tables={str(name): [row for row in rows if isinstance(row, dict)] for name, rows in tables.items()},
            agent_now=float(payload["now"]),
            run=str(payload["run"]) if payload.get("run") is not None else None,
            cursor=int(cursor_seen) if isinstance(cursor_seen, int) else None,
            sent_at=sent_at,
            received_at=received_at,
        )

    def meta(self) -> dict[str, Any]:
        """The agent's meta.json: its host, sampler config and connection counting method."""
        return self._get("/meta")


@dataclass(slots=True)
class _Clock:
    """The agent's clock against the master's, over the run."""

    offset_s: float | None = None
    """From the answer with the shortest round trip: the tightest bound."""
    round_trip_s: float | None = None
    min_offset_s: float | None = None
    max_offset_s: float | None = None

    def add(self, answer: AgentAnswer) -> None:
        offset = answer.clock_offset_s
        if self.round_trip_s is None or answer.round_trip_s < self.round_trip_s:
            self.offset_s, self.round_trip_s = offset, answer.round_trip_s
        self.min_offset_s = offset if self.min_offset_s is None else min(self.min_offset_s, offset)
        self.max_offset_s = offset if self.max_offset_s is None else max(self.max_offset_s, offset)


@dataclass(slots=True)
class AgentFeed:
    """Polls one agent for the master's target ``target`` and appends its rows to ``folder``."""

    client: AgentClient
    target: str
    folder: RunFolder
    cursor: int | None = None
    run: str | None = None
    reachable: bool | None = None
    """None until the first poll."""
    agent_targets: set[str] = field(default_factory=set)
    """The names the agent gave the target (renamed to ``target`` in the master's tables)."""
    agent_meta: dict[str, Any] | None = None
    rows: dict[str, int] = field(default_factory=dict)
    outages: list[dict[str, Any]] = field(default_factory=list)
    """[{"from": t, "to": t | None, "error": ...}]: when the agent did not answer (master clock)."""
    clock: _Clock = field(default_factory=_Clock)
    polls: int = 0
    failed_polls: int = 0

    def poll(self) -> int:
        """Fetch the rows the agent kept since the last poll and append them; return how many. Never raises."""
        self.polls += 1
        try:
            answer = self.client.samples(cursor=self.cursor)
        except TargetError as error:
            self.failed_polls += 1
            if self.reachable is not False:
                self.reachable = False
                self.outages.append({"from": time.time(), "to": None, "error": str(error)})
                self.folder.event("agent_unreachable", self.target, f"{error}; the run goes on without its rows")
            return 0
        if self.reachable is False:
            outage = self.outages[-1]
            outage["to"] = time.time()
            self.folder.event(
                "agent_recovered",
                self.target,
                f"agent at {self.client.url} answers again after {outage['to'] - outage['from']:.1f} s; "
                "rows it kept meanwhile are fetched",
            )
        self.reachable = True
        if self.run is not None and answer.run != self.run:
            # A restarted agent numbers its rows from 0 again: ask again for all it kept.
            self.folder.event("agent_restarted", self.target, f"agent at {self.client.url}: new run {answer.run}")
            try:
                answer = self.client.samples()
            except TargetError as error:
                self.folder.event("sampler_warning", "agent", f"{self.target}: {error}")
                self.run, self.cursor = answer.run, None
                return 0
        self.clock.add(answer)
        self.run = answer.run
        if self.agent_meta is None:
            self._first_contact(answer)
        self.cursor = answer.cursor
        return self._write(answer)

    def _first_contact(self, answer: AgentAnswer) -> None:
        try:
            meta = self.client.meta()
        except TargetError as error:
            meta = {"error": str(error)}
        sampler = meta.get("sampler") if isinstance(meta.get("sampler"), dict) else {}
        assert isinstance(sampler, dict)
        self.agent_meta = {
            "host": meta.get("host"),
            "run": answer.run,
            "agent": meta.get("agent"),
            "interval_s": sampler.get("interval_s"),
            "connections_method": sampler.get("connections_method"),
            "connections_method_reason": sampler.get("connections_method_reason"),
            "versions": meta.get("versions"),
            **({"error": meta["error"]} if "error" in meta else {}),
        }
        self.folder.event(
            "agent_connected",
            self.target,
            f"agent at {self.client.url} on host {meta.get('host')!s}: its clock is "
            f"{answer.clock_offset_s:+.3f} s from the master's (+/- {answer.round_trip_s / 2:.3f} s)",
        )

    def _write(self, answer: AgentAnswer) -> int:
        written = 0
        for name in FED_TABLES:
            rows = answer.tables.get(name) or []
            if not rows:
                continue
            renamed = []
            for row in rows:
                self.agent_targets.add(str(row.get("target")))
                renamed.append({**row, "target": self.target})
            self.folder.table(name).extend(renamed)
            self.rows[name] = self.rows.get(name, 0) + len(renamed)
            written += len(renamed)
        for row in answer.tables.get("events") or []:
            name = str(row.get("name") or "")
            self.folder.event(
                str(row.get("kind") or "agent_event"),
                self.target if name in self.agent_targets else name,
                f"(agent at {self.client.url}) {row.get('detail') or ''}".rstrip(),
                t=float(row["t"]) if isinstance(row.get("t"), int | float) else None,
            )
        return written

    def status(self) -> str:
        """``missing`` (no row ever came), ``partial`` (the agent did not answer for a while) or ``complete``."""
        if not any(self.rows.values()):
            return "missing"
        return "partial" if self.outages else "complete"

    def summary(self) -> dict[str, Any]:
        """What meta.json records of this agent (under ``agents.<target>``)."""
        return {
            "url": self.client.url,
            "status": self.status(),
            "agent_targets": sorted(self.agent_targets),
            "rows": dict(self.rows),
            "polls": self.polls,
            "failed_polls": self.failed_polls,
            "outages": list(self.outages),
            "clock_offset_s": _rounded(self.clock.offset_s),
            "clock_round_trip_s": _rounded(self.clock.round_trip_s),
            "clock_offset_min_s": _rounded(self.clock.min_offset_s),
            "clock_offset_max_s": _rounded(self.clock.max_offset_s),
            "agent": self.agent_meta,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


class AgentPoller:
    """Polls the feeds every ``poll_s`` in a background thread until ``stop``, then once more for the last rows."""

    def __init__(self, feeds: list[AgentFeed], poll_s: float, folder: RunFolder) -> None:
        self.feeds = feeds
        self.poll_s = poll_s
        self._folder = folder
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def summary(self) -> dict[str, Any]:
        """meta.json ``agents``: per target, the clock offset, the outages and how complete its rows are."""
        return {feed.target: feed.summary() for feed in self.feeds}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._poll, name="harness-agent-poll", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while True:
            for feed in self.feeds:
                if self._stop.is_set():
                    return
                feed.poll()
            if self._stop.wait(self.poll_s):
                return

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        # A poll is at most three requests (samples, meta at first contact, samples again after a restart).
        self._thread.join(timeout=sum(3 * feed.client.timeout_s for feed in self.feeds) + 1.0)
        if self._thread.is_alive():
            self._folder.event("sampler_warning", "agent", "agent poller did not stop within its deadline")
            return
        for feed in self.feeds:  # the rows of the last moments
            feed.poll()
