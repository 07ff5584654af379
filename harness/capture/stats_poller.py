"""The stats poller: each target's and the upstream's ``/__harness/stats``, on the samplers' clock.

Requests run in worker threads (greenlets under gevent, where urllib is cooperative) so one slow or dead target
never holds the tick: ``begin`` sends, ``collect`` waits until a deadline and records whatever has not answered
as a gap (a row with ``ok`` = 0 and the error), not a crash. A target whose previous request is still pending is
not asked again until it answers, so a hung target costs one thread, not one per tick.

At the end, ``fetch_upstream_streams`` reads each upstream's per-stream records (``/__harness/streams``), tagged
with the target the upstream serves (each target has its own upstream: its books are that target's alone).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from harness.runfolder import TABLES, UPSTREAM_STREAM_COLUMNS

__all__ = [
    "STATS_COLUMNS",
    "STATS_PATH",
    "STREAMS_PATH",
    "StatsPoller",
    "StatsTarget",
    "fetch_json",
    "fetch_upstream_streams",
    "stats_row",
]

STATS_PATH = "/__harness/stats"
STREAMS_PATH = "/__harness/streams"

STATS_COLUMNS = TABLES["stats"]
"""stats.csv: one row per polled target per tick. ``ok`` 1/0; on 0 the other readings are blank and ``error``
says why. ``server_time`` is the target's own clock (epoch s), ``response_ms`` how long it took to answer, and
``extra`` any other fields as compact JSON (the upstream's ``ended`` counts by reason, a custom server's own)."""

_KNOWN = frozenset(STATS_COLUMNS[STATS_COLUMNS.index("server_time") + 1 : STATS_COLUMNS.index("extra")])
"""The relays' and the upstream's stats fields that have a column of their own."""


@dataclass(frozen=True, slots=True)
class StatsTarget:
    name: str
    url: str
    """Base URL; stats are read at url + STATS_PATH."""
    upstream_of: str | None = None
    """For a target's own fake upstream: that target (stats.csv ``upstream_of``)."""


def fetch_json(url: str, timeout_s: float) -> Any:
    """GET ``url`` and decode its JSON body; raises OSError (URLError, timeout) or ValueError."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.load(response)


def stats_row(
    t: float, target: str, answer: Mapping[str, Any], response_ms: float, upstream_of: str | None = None
) -> dict[str, object]:
    """A stats.csv row from one decoded /__harness/stats answer."""
    row: dict[str, object] = {
        "t": t,
        "target": target,
        "upstream_of": upstream_of,
        "ok": 1,
        "response_ms": round(response_ms, 3),
        "server_time": answer.get("time"),
    }
    extra = {}
    for key, value in answer.items():
        if key in _KNOWN:
            row[key] = value
        elif key != "time":
            extra[key] = value
    row["extra"] = json.dumps(extra, separators=(",", ":"), sort_keys=True) if extra else None
    return row


def _connect(url: str, timeout_s: float) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"stats URL must look like http://HOST:PORT, but got {url!r}")
    return http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout_s)


def _path_of(url: str) -> str:
    return urlsplit(url).path.rstrip("/")


def _gap(t: float, target: StatsTarget, error: str) -> dict[str, object]:
    return {"t": t, "target": target.name, "upstream_of": target.upstream_of, "ok": 0, "error": error}


def _describe(error: BaseException) -> str:
    if type(error) is OSError and error.errno is None:
        return str(error)  # already described by _get
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code}"
    if isinstance(error, urllib.error.URLError):
        return f"unreachable: {error.reason}"
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ValueError):
        return f"not JSON: {error}"
    return f"{type(error).__name__}: {error}"


class StatsPoller:
    """Polls several targets' stats concurrently, bounded by a deadline per tick."""

    def __init__(self, targets: Sequence[StatsTarget], timeout_s: float = 1.0) -> None:
        self.targets = list(targets)
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.targets)), thread_name_prefix="stats-poll")
        self._pending: dict[str, Future[tuple[Any, float]]] = {}
        self._lock = threading.Lock()
        self._connections: dict[str, http.client.HTTPConnection] = {}

    def _get(self, target: StatsTarget) -> tuple[Any, float]:
        # One keep-alive connection per target, reused: a new connection per poll would cost a handshake and
        # leave a TIME_WAIT socket per target per tick (960 a minute for 4 targets at 4 Hz).
        started = time.perf_counter()
        connection = self._connections.pop(target.name, None)
        for attempt in (1, 2):
            if connection is None:
                connection = _connect(target.url, self.timeout_s)
            try:
                connection.request("GET", _path_of(target.url) + STATS_PATH)
                response = connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                connection = None
                # A kept connection the server closed meanwhile fails at once: retry once on a fresh one.
                if attempt == 2 or isinstance(error, TimeoutError):
                    raise OSError(_describe(error)) from error
                continue
            if response.status != 200:
                connection.close()
                raise OSError(f"HTTP {response.status}")
            if response.will_close:
                connection.close()
            else:
                self._connections[target.name] = connection
            return json.loads(body), (time.perf_counter() - started) * 1000
        raise AssertionError("unreachable")

    def begin(self, skip: frozenset[str] = frozenset()) -> dict[str, Future[tuple[Any, float]] | None]:
        """Send this tick's requests; a target still busy with an earlier one gets None (a gap)."""
        sent: dict[str, Future[tuple[Any, float]] | None] = {}
        with self._lock:
            for target in self.targets:
                if target.name in skip:
                    continue
                pending = self._pending.get(target.name)
                if pending is not None and not pending.done():
                    sent[target.name] = None
                    continue
                future = self._pool.submit(self._get, target)
                self._pending[target.name] = future
                sent[target.name] = future
        return sent

    def collect(
        self, t: float, sent: Mapping[str, Future[tuple[Any, float]] | None], deadline: float
    ) -> list[dict[str, object]]:
        """Rows for the requests ``begin`` sent, waiting at most until ``deadline`` (time.monotonic())."""
        rows = []
        by_name = {target.name: target for target in self.targets}
        for name, future in sent.items():
            target = by_name[name]
            if future is None:
                rows.append(_gap(t, target, "previous request still unanswered"))
                continue
            try:
                answer, response_ms = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                rows.append(_gap(t, target, "no answer within the tick"))
                continue
            except (OSError, ValueError) as error:
                rows.append(_gap(t, target, _describe(error)))
                continue
            if not isinstance(answer, Mapping):
                rows.append(_gap(t, target, f"expected a JSON object, got {type(answer).__name__}"))
                continue
            rows.append(stats_row(t, name, answer, response_ms, target.upstream_of))
        return rows

    def close(self) -> None:
        """Stop the workers without waiting for a hung request (each has its own timeout)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        for connection in list(self._connections.values()):
            connection.close()
        self._connections.clear()


def fetch_upstream_streams(url: str, timeout_s: float = 5.0, target: str | None = None) -> list[dict[str, object]]:
    """The upstream's per-stream records, as upstream_streams.csv rows; ``target``: the target this upstream
    serves (its ``target`` column; None for an upstream shared by every target)."""
    answer = fetch_json(url.rstrip("/") + STREAMS_PATH, timeout_s)
    if not isinstance(answer, list):
        raise ValueError(f"{url}{STREAMS_PATH} should answer a JSON list, but answered {type(answer).__name__}")
    return [
        {column: record.get(column) for column in UPSTREAM_STREAM_COLUMNS} | {"target": target} for record in answer
    ]
