"""One stream, start to end: connect (receive buffer set first), send the request, read the body fast, paced or not
at all, count tokens through the API's decoder, leave on purpose (RST or FIN), and record how it ended."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import gevent

from harness.load.apis import TERMINATORS
from harness.load.behaviour import Behaviour
from harness.load.decoders import TokenDecoder, decoder_for
from harness.load.echo import PREFIX_BYTES, echoed_id
from harness.load.pacing import Pace, TokenBucket
from harness.load.records import ClientRecord, stream_ended
from harness.load.request import build_request
from harness.load.stream_client import StreamBroken, StreamConnection
from harness.load.stream_settings import StreamSettings
from harness.load.stream_stats import StreamStats

__all__ = ["TOKEN_READ_BYTES", "Stream"]

TOKEN_READ_BYTES = 1024
"""A token-paced reader reads this much from the socket whenever it has no decoded token left to consume."""


class _Left(Exception):
    """The client leaves on purpose."""

    def __init__(self, when: str) -> None:
        super().__init__(when)
        self.when = when


class Stream:
    """One stream, run once with :meth:`run` in the calling greenlet."""

    def __init__(self, behaviour: Behaviour, settings: StreamSettings, fire: Callable[..., Any]) -> None:
        self.behaviour = behaviour
        self.settings = settings
        self.stream_id = f"s-{uuid.uuid4().hex[:16]}"
        self.pace = Pace.parse(behaviour.pace) if behaviour.pace else settings.pace
        self.stats = StreamStats(
            fire, target=settings.target.name, stream_id=self.stream_id, event_stream=settings.api != "chunked"
        )
        self._conn: StreamConnection | None = None
        self.upstream_id = ""
        """The upstream's own stream id, when the response carried it back (harness.load.echo)."""
        self.tokens = 0
        self.status = 0
        self._t0 = 0.0
        self._wall0 = 0.0
        self.first_byte: float | None = None
        self.first_token: float | None = None
        self._last_token = 0.0
        self._max_gap = 0.0
        self._leave_at: float | None = None

    # -- measuring ----------------------------------------------------------------------------------------------
    def _wall(self, perf: float) -> float:
        return self._wall0 + (perf - self._t0)

    def _got_tokens(self, count: int, now: float) -> None:
        if count <= 0:
            return
        if self.tokens == 0:
            self.first_token = now
        else:
            self._max_gap = max(self._max_gap, now - self._last_token)
        self._last_token = now
        self.tokens += count

    # -- running ------------------------------------------------------------------------------------------------
    def run(self) -> ClientRecord:
        """Open, read and end the stream; fire its stats and :data:`stream_ended`; return its record."""
        self._wall0, self._t0 = time.time(), time.perf_counter()
        if self.behaviour.leave == "after_seconds":
            self._leave_at = self._t0 + self.behaviour.leave_after_s
        try:
            outcome, leave_when, error = self._run()
        except gevent.GreenletExit:
            # Locust stopped the user (a phase ended): the client leaves mid-stream; recorded, then re-raised.
            self._read_echo()
            self._close(left=True)
            self.stats.left(time.perf_counter() - self._t0, self._bytes())
            stream_ended.fire(record=self._record("left", "user_stopped", ""))  # type: ignore[no-untyped-call]
            raise
        self._read_echo()
        self._close(left=outcome == "left")
        record = self._record(outcome, leave_when, error)
        stream_ended.fire(record=record)  # type: ignore[no-untyped-call]
        return record

    def _run(self) -> tuple[str, str, str]:
        """(outcome, leave_when, error)."""
        behaviour = self.behaviour
        try:
            self._conn = StreamConnection(
                self.settings.target.host,
                self.settings.target.port,
                rcvbuf_bytes=self.settings.rcvbuf_bytes,
                count_chunks=self.settings.api == "chunked",
            )
        except OSError as exc:
            self.stats.ended(time.perf_counter() - self._t0, 0, exc)
            return "connect_error", "", f"cannot connect to {self.settings.target.url}: {exc}"
        try:
            request = build_request(self.stream_id, behaviour, self.settings)
            self._conn.send_request(request.method, request.path, request.headers, request.body)
            if behaviour.leave == "before_headers":
                raise _Left("before_headers")
            head = self._conn.read_head(timeout_s=self._timeout(time.perf_counter()))
            now = time.perf_counter()
            self.first_byte = now
            self.status = head.status
            if head.status != 200:
                error = f"HTTP {head.status} from {self.settings.target.name}"
                self.stats.ended(now - self._t0, 0, StreamBroken(error))
                return "http_error", "", error
            decoder = decoder_for(self.settings.api, self._conn)
            if behaviour.read == "stalled":
                self._stall()
            elif behaviour.read == "paced" and self.pace.unit == "tokens":
                self._read_token_paced(self._conn, decoder)
            elif behaviour.read == "paced":
                self._read_bytes(self._conn, decoder)
            else:
                self._read_fast(self._conn, decoder)
            if not decoder.finished:
                error = f"the body ended without {TERMINATORS[self.settings.api]}"
                self.stats.ended(time.perf_counter() - self._t0, self._bytes(), StreamBroken(error))
                return "truncated", "", error
            self.stats.ended(time.perf_counter() - self._t0, self._bytes())
            return "completed", "", ""
        except _Left as left:
            self.stats.left(time.perf_counter() - self._t0, self._bytes())
            return "left", left.when, ""
        except (StreamBroken, TimeoutError, OSError) as exc:
            if self._leave_due(time.perf_counter()):
                self.stats.left(time.perf_counter() - self._t0, self._bytes())
                return "left", "after_seconds", ""
            self.stats.ended(time.perf_counter() - self._t0, self._bytes(), exc)
            return "broken", "", str(exc) or type(exc).__name__

    def _read_echo(self) -> None:
        """The upstream's own id, if the response carried one (harness.load.echo): once, before closing."""
        conn = self._conn
        if conn is None or conn.closed:
            return
        self.upstream_id = echoed_id(conn.body_prefix)
        if not self.upstream_id and len(conn.body_prefix) < PREFIX_BYTES:
            self.upstream_id = echoed_id(conn.body_prefix + conn.unread_start())

    def _bytes(self) -> int:
        return self._conn.bytes_received if self._conn is not None else 0

    def _close(self, *, left: bool) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close(reset=left and self.behaviour.leave_how == "reset")

    def _record(self, outcome: str, leave_when: str, error: str) -> ClientRecord:
        return ClientRecord(
            stream_id=self.stream_id,
            target=self.settings.target.name,
            behaviour=self.behaviour.label(self.pace),
            worker=self.settings.worker,
            start=self._wall0,
            first_byte=None if self.first_byte is None else self._wall(self.first_byte),
            first_token=None if self.first_token is None else self._wall(self.first_token),
            end=time.time(),
            outcome=outcome,
            leave_how=self.behaviour.leave_how if outcome == "left" else "",
            leave_when=leave_when,
            status=self.status,
            tokens=self.tokens,
            bytes_read=self._bytes(),
            error=error.replace("\n", " "),
            max_token_gap=self._max_gap if self.tokens >= 2 else None,
            upstream_id=self.upstream_id,
        )

    # -- leaving ------------------------------------------------------------------------------------------------
    def _leave_due(self, now: float) -> bool:
        return self._leave_at is not None and now >= self._leave_at - 0.001

    def _timeout(self, now: float) -> float:
        timeout = self.behaviour.idle_timeout_s
        if self._leave_at is not None:
            timeout = min(timeout, max(0.0, self._leave_at - now))
        return timeout

    def _check_leave(self, now: float) -> None:
        if self._leave_due(now):
            raise _Left("after_seconds")
        if self.behaviour.leave == "after_tokens" and self.tokens >= self.behaviour.leave_after_tokens:
            raise _Left("after_tokens")

    def _sleep_until(self, wake: float) -> None:
        gevent.sleep(max(0.0, wake - time.perf_counter()))

    # -- reading ------------------------------------------------------------------------------------------------
    def _stall(self) -> None:
        while True:
            now = time.perf_counter()
            self._check_leave(now)
            self._sleep_until(self._leave_at if self._leave_at is not None else now + 3600.0)

    def _read_fast(self, conn: StreamConnection, decoder: TokenDecoder) -> None:
        """As fast as the data comes: the hot loop of thousands of slow streams, so it does as little as it can
        (one read, one feed, one clock reading per wake-up; the bookkeeping in locals, stored when it ends)."""
        after_tokens = self.behaviour.leave_after_tokens if self.behaviour.leave == "after_tokens" else 0
        timeout = self.behaviour.idle_timeout_s
        leave_at = self._leave_at
        read, feed, clock = conn.read, decoder.feed, time.perf_counter
        if not self.tokens:  # up to the first token: TTFT is reported the moment it arrives
            while True:
                if leave_at is not None:
                    now = clock()
                    self._check_leave(now)
                    timeout = self._timeout(now)
                data = read(65536, timeout)
                if data is None:
                    return
                count = feed(data)
                if count:
                    self._got_tokens(count, clock())
                    break
        tokens, last, max_gap = self.tokens, self._last_token, self._max_gap
        try:
            while not after_tokens or tokens < after_tokens:
                if leave_at is not None:
                    now = clock()
                    if now >= leave_at - 0.001:
                        raise _Left("after_seconds")
                    timeout = min(self.behaviour.idle_timeout_s, leave_at - now)
                data = read(65536, timeout)
                if data is None:
                    return
                count = feed(data)
                if count:
                    now = clock()
                    if now - last > max_gap:
                        max_gap = now - last
                    last = now
                    tokens += count
            raise _Left("after_tokens")
        finally:
            self.tokens, self._last_token, self._max_gap = tokens, last, max_gap

    def _read_bytes(self, conn: StreamConnection, decoder: TokenDecoder) -> None:
        """Paced in bytes per second."""
        bucket = TokenBucket.for_pace(self.pace, time.perf_counter(), read_interval_s=self.behaviour.read_interval_s)
        while True:
            now = time.perf_counter()
            self._check_leave(now)
            plan = bucket.plan(now)
            if plan.wait_s > 0:
                self._sleep_until(min(now + plan.wait_s, self._leave_at or float("inf")))
                continue
            data = conn.read(plan.max_units, timeout_s=self._timeout(now))
            now = time.perf_counter()
            if data is None:
                return
            bucket.spend(len(data), now)
            self._got_tokens(decoder.feed(data), now)
            self._check_leave(now)

    def _read_token_paced(self, conn: StreamConnection, decoder: TokenDecoder) -> None:
        """Paced in tokens per second: consume decoded tokens one at a time; read more only when none is left."""
        bucket = TokenBucket.for_pace(self.pace, time.perf_counter())
        waiting = 0
        while True:
            now = time.perf_counter()
            self._check_leave(now)
            if waiting == 0:
                data = conn.read(TOKEN_READ_BYTES, timeout_s=self._timeout(now))
                if data is None:
                    return
                waiting += decoder.feed(data)
                continue
            plan = bucket.plan(now)
            if plan.wait_s > 0:
                self._sleep_until(min(now + plan.wait_s, self._leave_at or float("inf")))
                continue
            waiting -= 1
            bucket.spend(1, now)
            self._got_tokens(1, now)
