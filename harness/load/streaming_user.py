"""The streaming Locust user: one raw socket per stream, reading fast, paced or not at all, leaving on purpose.

Each task of a :class:`StreamingUser` is one stream: a new stream id (sent as ``X-Request-ID``, in the body's
``user`` field, or as ``?user=`` on ``GET /v1/stream``), a :class:`~harness.load.stream_client.StreamConnection` with
a small receive buffer, reading as its :class:`Behaviour` says, and one :class:`ClientRecord` when it ends, handed
to the listeners of :data:`stream_ended` (the plugin writes them to the run folder).

Locust statistics, per target (``request_type`` ``SSE`` or ``STREAM``):
    ``<target> ttfb``          request sent -> response headers
    ``<target> ttft``          request sent -> first token (SSE data event, or first chunk)
    ``<target> token gap``     one entry per stream: the mean gap between its tokens, (last - first) / (n - 1)
    ``<target> token gap max`` one entry per stream: its longest gap between two reads that brought tokens
    ``<target> stream``        the whole stream, response length = bytes read; a failure if broken or truncated
    ``<target> left``          a stream the client left on purpose (never a failure)
One stats entry per token would cost more than the stream itself at thousands of streams (Locust's stats are a
dict update per call); the two per-stream gap entries cost O(1) per token and keep stalls visible.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlencode

import gevent
from locust import User, constant, task
from locust.event import EventHook

from harness.errors import UsageError
from harness.launch.targets_spec import RequestSpec, parse_requests
from harness.load.pacing import Pace, TokenBucket
from harness.load.sse import SseDecoder
from harness.load.stream_client import StreamBroken, StreamConnection, split_url

__all__ = [
    "Behaviour",
    "ClientRecord",
    "StreamingUser",
    "Target",
    "format_targets",
    "parse_targets",
    "stream_ended",
]

ReadMode = Literal["fast", "paced", "stalled"]
LeaveWhen = Literal["never", "before_headers", "after_tokens", "after_seconds"]
LeaveHow = Literal["reset", "close"]
Api = Literal["sse", "chunked"]

MIN_RCVBUF_BYTES = 1152
"""Linux doubles SO_RCVBUF and raises anything under SOCK_MIN_RCVBUF (2304 bytes) to it: 1152 is the least that
means what it says. 0 leaves the kernel's autotuning."""

DEFAULT_READ_PACE = "1KiB/s"
TOKEN_READ_BYTES = 1024
"""A token-paced reader reads this much from the socket whenever it has no decoded token left to consume."""

stream_ended = EventHook()  # type: ignore[no-untyped-call]
"""Fired with ``record=ClientRecord`` in the user's greenlet when a stream ends, however it ends."""


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How one stream is read and left."""

    read: ReadMode = "fast"
    pace: str | None = None
    """For ``read="paced"``: ``"2KiB/s"`` or ``"5tok/s"``; None = the ``--read-pace`` flag."""
    leave: LeaveWhen = "never"
    leave_after_tokens: int = 0
    leave_after_s: float = 0.0
    """Seconds after the request was sent."""
    leave_how: LeaveHow = "reset"
    """``reset`` = SO_LINGER 0 (RST); ``close`` = a plain close (FIN, or RST if unread data is left)."""
    api: Api | None = None
    """``sse`` = POST /v1/chat/completions; ``chunked`` = GET /v1/stream; None = the ``--stream-api`` flag."""
    upstream: tuple[tuple[str, str], ...] = ()
    """Per-request upstream overrides sent in the query string, e.g. (("tokens", "50"), ("rate", "20"))."""
    read_interval_s: float = 0.25
    """A byte-paced reader reads about this often."""
    idle_timeout_s: float = 30.0
    """A stream that brings nothing for this long is broken."""

    def __post_init__(self) -> None:
        if self.read not in ("fast", "paced", "stalled"):
            raise UsageError(f"Behaviour.read must be 'fast', 'paced' or 'stalled', but got {self.read!r}")
        if self.leave not in ("never", "before_headers", "after_tokens", "after_seconds"):
            raise UsageError(
                "Behaviour.leave must be 'never', 'before_headers', 'after_tokens' or 'after_seconds', "
                f"but got {self.leave!r}"
            )
        if self.leave_how not in ("reset", "close"):
            raise UsageError(f"Behaviour.leave_how must be 'reset' or 'close', but got {self.leave_how!r}")
        if self.leave == "after_tokens" and self.leave_after_tokens < 1:
            raise UsageError(f"leave='after_tokens' needs leave_after_tokens >= 1, but got {self.leave_after_tokens}")
        if self.leave == "after_tokens" and self.read == "stalled":
            raise UsageError("a stalled reader reads no tokens: leave it after_seconds, not after_tokens")
        if self.leave == "after_seconds" and not self.leave_after_s > 0:
            raise UsageError(f"leave='after_seconds' needs leave_after_s > 0, but got {self.leave_after_s}")
        if self.pace is not None:
            Pace.parse(self.pace, what="Behaviour.pace")

    def label(self, pace: Pace | None = None) -> str:
        """What clients.csv records, e.g. ``paced:1024B/s+leave_after_tokens:5:reset``."""
        read = f"paced:{pace}" if self.read == "paced" and pace is not None else self.read
        if self.leave == "never":
            return read
        amount = {"after_tokens": f":{self.leave_after_tokens}", "after_seconds": f":{self.leave_after_s:g}s"}
        return f"{read}+leave_{self.leave}{amount.get(self.leave, '')}:{self.leave_how}"


@dataclass(frozen=True, slots=True)
class Target:
    """A server the users stream from."""

    name: str
    url: str
    host: str = field(init=False)
    port: int = field(init=False)
    base_path: str = field(init=False)

    def __post_init__(self) -> None:
        if not self.name or not all(ch.isalnum() or ch in "-_." for ch in self.name):
            raise UsageError(f"a target name must be letters, digits, '-', '_' or '.', but got {self.name!r}")
        host, port, base = split_url(self.url)
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "base_path", base)


def parse_targets(text: str, *, what: str = "--target-url") -> tuple[Target, ...]:
    """``"mine=http://127.0.0.1:8080,theirs=http://[::1]:9000"`` -> targets; names must be unique."""
    targets: list[Target] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, equals, url = item.partition("=")
        if not equals:
            raise UsageError(f"{what} takes NAME=http://HOST:PORT[,NAME=URL...], but got {item!r}")
        try:
            targets.append(Target(name.strip(), url.strip()))
        except UsageError as error:
            raise UsageError(f"{what} entry {item!r}: {error}") from None
    if not targets:
        raise UsageError(f"{what} takes NAME=http://HOST:PORT[,NAME=URL...], but got {text!r}")
    names = [target.name for target in targets]
    if len(set(names)) != len(names):
        raise UsageError(f"{what} names a target twice: {text!r}")
    return tuple(targets)


def format_targets(targets: tuple[Target, ...]) -> str:
    """The inverse of :func:`parse_targets` (how targets travel to workers in Locust's parsed options)."""
    return ",".join(f"{target.name}={target.url}" for target in targets)


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """One stream as the client saw it; times are epoch seconds (see runfolder.CLIENT_COLUMNS)."""

    stream_id: str
    target: str
    behaviour: str
    worker: str
    start: float
    first_byte: float | None
    first_token: float | None
    end: float
    outcome: str
    """completed | left | broken | http_error | connect_error"""
    leave_how: str
    leave_when: str
    """before_headers | after_tokens | after_seconds | user_stopped (Locust stopped the user mid-stream) | ''"""
    status: int
    tokens: int
    bytes_read: int
    error: str

    def row(self) -> dict[str, Any]:
        """The clients.csv row."""
        return {
            "stream_id": self.stream_id,
            "target": self.target,
            "behaviour": self.behaviour,
            "worker": self.worker,
            "start": self.start,
            "first_byte": self.first_byte,
            "first_token": self.first_token,
            "end": self.end,
            "outcome": self.outcome,
            "leave_how": self.leave_how,
            "leave_when": self.leave_when,
            "status": self.status,
            "tokens": self.tokens,
            "bytes": self.bytes_read,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """Everything one stream needs besides its behaviour, read from Locust's options when a user starts."""

    target: Target
    pace: Pace
    """The pace of paced readers whose behaviour names none (the ``--read-pace`` flag)."""
    rcvbuf_bytes: int
    api: Api
    worker: str
    model: str = "stream-harness"
    upstream: tuple[tuple[str, str], ...] = ()
    """Upstream settings sent in every request's query string (the behaviour's own override them)."""
    request: RequestSpec | None = None
    """The target's own request (--request, --request-body), when it does not speak the API's default one."""
    max_tokens: int = 200
    """``{max_tokens}`` of a request template when the upstream query names no ``tokens``."""


class _Left(Exception):
    """The client leaves on purpose."""

    def __init__(self, when: str) -> None:
        super().__init__(when)
        self.when = when


def _is_token(data: str) -> bool:
    # OpenAI streams end with a chunk without content (finish_reason) and a [DONE] event: neither is a token.
    if data == "[DONE]":
        return False
    return not (data.startswith("{") and '"choices"' in data and '"content"' not in data)


class Stream:
    """One stream, run once with :meth:`run` in the calling greenlet."""

    def __init__(self, behaviour: Behaviour, settings: StreamSettings, fire: Callable[..., Any]) -> None:
        self.behaviour = behaviour
        self.settings = settings
        self._fire = fire
        self.stream_id = f"s-{uuid.uuid4().hex[:16]}"
        self.pace = Pace.parse(behaviour.pace) if behaviour.pace else settings.pace
        self._request_type = "SSE" if settings.api == "sse" else "STREAM"
        self._conn: StreamConnection | None = None
        self._decoder = SseDecoder() if settings.api == "sse" else None
        self._done_seen = False
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

    def _stat(self, what: str, seconds: float, length: int = 0, error: BaseException | None = None) -> None:
        self._fire(
            request_type=self._request_type,
            name=f"{self.settings.target.name} {what}",
            response_time=seconds * 1000.0,
            response_length=length,
            exception=error,
            context={"stream_id": self.stream_id},
        )

    def _got_tokens(self, count: int, now: float) -> None:
        if count <= 0:
            return
        if self.tokens == 0:
            self.first_token = now
            self._stat("ttft", now - self._t0)
        else:
            self._max_gap = max(self._max_gap, now - self._last_token)
        self._last_token = now
        self.tokens += count

    def _count_tokens(self, data: bytes, chunks_before: int) -> int:
        if self._decoder is None:
            assert self._conn is not None
            return self._conn.chunks_received - chunks_before
        count = 0
        for event in self._decoder.feed(data):
            if event.data == "[DONE]":
                self._done_seen = True
            elif _is_token(event.data):
                count += 1
        return count

    # -- running ------------------------------------------------------------------------------------------------
    def _request(self) -> tuple[str, str, dict[str, str], bytes]:
        target, behaviour = self.settings.target, self.behaviour
        query = list((dict(self.settings.upstream) | dict(behaviour.upstream)).items())
        headers = {"X-Request-ID": self.stream_id}
        if self.settings.request is not None and self.settings.request.path is not None:
            return self._custom_request(query, headers)
        if self.settings.api == "sse":
            path = f"{target.base_path}/v1/chat/completions"
            body = {
                "model": self.settings.model,
                "messages": [{"role": "user", "content": "stream-harness"}],
                "stream": True,
                "user": self.stream_id,
            }
            headers |= {"Content-Type": "application/json", "Accept": "text/event-stream"}
            payload = json.dumps(body, separators=(",", ":")).encode()
            method = "POST"
        else:
            path = f"{target.base_path}/v1/stream"
            query.insert(0, ("user", self.stream_id))
            payload = b""
            method = "GET"
        return method, path + (f"?{urlencode(query)}" if query else ""), headers, payload

    def _custom_request(
        self, query: list[tuple[str, str]], headers: dict[str, str]
    ) -> tuple[str, str, dict[str, str], bytes]:
        """The target's own method, path and body template (--request, --request-body), placeholders filled in."""
        request = self.settings.request
        assert request is not None
        max_tokens = int(dict(query).get("tokens", self.settings.max_tokens))
        method, path, body = request.render(stream_id=self.stream_id, max_tokens=max_tokens)
        if body:
            headers["Content-Type"] = "application/json"
        if self.settings.api == "sse":
            headers["Accept"] = "text/event-stream"
        if query:
            path += ("&" if "?" in path else "?") + urlencode(query)
        return method, self.settings.target.base_path + path, headers, body

    def run(self) -> ClientRecord:
        """Open, read and end the stream; fire its stats and :data:`stream_ended`; return its record."""
        self._wall0, self._t0 = time.time(), time.perf_counter()
        if self.behaviour.leave == "after_seconds":
            self._leave_at = self._t0 + self.behaviour.leave_after_s
        try:
            outcome, leave_when, error = self._run()
        except gevent.GreenletExit:
            # Locust stopped the user (a phase ended): the client leaves mid-stream; recorded, then re-raised.
            self._close(left=True)
            stream_ended.fire(record=self._record("left", "user_stopped", ""))  # type: ignore[no-untyped-call]
            raise
        self._close(left=outcome == "left")
        record = self._record(outcome, leave_when, error)
        stream_ended.fire(record=record)  # type: ignore[no-untyped-call]
        return record

    def _run(self) -> tuple[str, str, str]:
        """(outcome, leave_when, error)."""
        behaviour = self.behaviour
        try:
            self._conn = StreamConnection(
                self.settings.target.host, self.settings.target.port, rcvbuf_bytes=self.settings.rcvbuf_bytes
            )
        except OSError as exc:
            self._stat("stream", time.perf_counter() - self._t0, 0, exc)
            return "connect_error", "", f"cannot connect to {self.settings.target.url}: {exc}"
        try:
            method, path, headers, body = self._request()
            self._conn.send_request(method, path, headers, body)
            if behaviour.leave == "before_headers":
                raise _Left("before_headers")
            head = self._conn.read_head(timeout_s=self._timeout(time.perf_counter()))
            now = time.perf_counter()
            self.first_byte = now
            self.status = head.status
            self._stat("ttfb", now - self._t0)
            if head.status != 200:
                error = f"HTTP {head.status} from {self.settings.target.name}"
                self._stat("stream", now - self._t0, 0, StreamBroken(error))
                return "http_error", "", error
            if behaviour.read == "stalled":
                self._stall()
            elif behaviour.read == "paced" and self.pace.unit == "tokens":
                self._read_token_paced()
            elif behaviour.read == "paced":
                self._read_bytes()
            else:
                self._read_fast()
            if self._decoder is not None and not self._done_seen:
                raise StreamBroken("the event stream ended without data: [DONE]")
            self._stat("stream", time.perf_counter() - self._t0, self._bytes())
            return "completed", "", ""
        except _Left as left:
            self._stat("left", time.perf_counter() - self._t0, self._bytes())
            return "left", left.when, ""
        except (StreamBroken, TimeoutError, OSError) as exc:
            if self._leave_due(time.perf_counter()):
                self._stat("left", time.perf_counter() - self._t0, self._bytes())
                return "left", "after_seconds", ""
            self._stat("stream", time.perf_counter() - self._t0, self._bytes(), exc)
            return "broken", "", str(exc) or type(exc).__name__

    def _bytes(self) -> int:
        return self._conn.bytes_received if self._conn is not None else 0

    def _close(self, *, left: bool) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close(reset=left and self.behaviour.leave_how == "reset")

    def _record(self, outcome: str, leave_when: str, error: str) -> ClientRecord:
        gaps = self.tokens - 1
        if gaps > 0 and self.first_token is not None:
            self._stat("token gap", (self._last_token - self.first_token) / gaps)
            self._stat("token gap max", self._max_gap)
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
        )

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

    def _stall(self) -> None:
        while True:
            now = time.perf_counter()
            self._check_leave(now)
            self._sleep_until(self._leave_at if self._leave_at is not None else now + 3600.0)

    def _read_fast(self) -> None:
        """As fast as the data comes: the hot loop of thousands of slow streams, so it does as little as it can."""
        conn = self._conn
        assert conn is not None
        after_tokens = self.behaviour.leave_after_tokens if self.behaviour.leave == "after_tokens" else 0
        timeout = self.behaviour.idle_timeout_s
        while True:
            if self._leave_at is not None:
                now = time.perf_counter()
                self._check_leave(now)
                timeout = self._timeout(now)
            chunks_before = conn.chunks_received
            data = conn.read(65536, timeout_s=timeout)
            if data is None:
                return
            tokens = self._count_tokens(data, chunks_before)
            if tokens:
                self._got_tokens(tokens, time.perf_counter())
                if after_tokens and self.tokens >= after_tokens:
                    raise _Left("after_tokens")

    def _read_bytes(self) -> None:
        """Paced in bytes per second."""
        assert self._conn is not None
        bucket = TokenBucket.for_pace(self.pace, time.perf_counter(), read_interval_s=self.behaviour.read_interval_s)
        while True:
            now = time.perf_counter()
            self._check_leave(now)
            plan = bucket.plan(now)
            if plan.wait_s > 0:
                self._sleep_until(min(now + plan.wait_s, self._leave_at or float("inf")))
                continue
            chunks_before = self._conn.chunks_received
            data = self._conn.read(plan.max_units, timeout_s=self._timeout(now))
            now = time.perf_counter()
            if data is None:
                return
            bucket.spend(len(data), now)
            self._got_tokens(self._count_tokens(data, chunks_before), now)
            self._check_leave(now)

    def _read_token_paced(self) -> None:
        """Paced in tokens per second: consume decoded tokens one at a time; read more only when none is left."""
        assert self._conn is not None
        bucket = TokenBucket.for_pace(self.pace, time.perf_counter())
        waiting = 0
        while True:
            now = time.perf_counter()
            self._check_leave(now)
            if waiting == 0:
                chunks_before = self._conn.chunks_received
                data = self._conn.read(TOKEN_READ_BYTES, timeout_s=self._timeout(now))
                if data is None:
                    return
                waiting += self._count_tokens(data, chunks_before)
                continue
            plan = bucket.plan(now)
            if plan.wait_s > 0:
                self._sleep_until(min(now + plan.wait_s, self._leave_at or float("inf")))
                continue
            waiting -= 1
            bucket.spend(1, now)
            self._got_tokens(1, now)


_user_counters: dict[type, itertools.count[int]] = {}


def settings_from_options(environment: Any) -> tuple[tuple[Target, ...], Pace, int, Api, tuple[tuple[str, str], ...]]:
    """Targets, default pace, receive buffer, API and upstream query from Locust's parsed options (the plugin's
    flags), else defaults."""
    options = environment.parsed_options
    text = getattr(options, "harness_targets", None) or getattr(options, "target_url", None)
    if text:
        targets = parse_targets(str(text))
    elif environment.host:
        targets = (Target("host", str(environment.host)),)
    else:
        raise UsageError("no target to stream from: give --target-url NAME=URL, --host URL, or load the plugin")
    pace = Pace.parse(str(getattr(options, "read_pace", None) or DEFAULT_READ_PACE), what="--read-pace")
    rcvbuf = int(getattr(options, "client_rcvbuf", 4096))
    api_text = str(getattr(options, "stream_api", "sse"))
    api: Api = "chunked" if api_text == "chunked" else "sse"
    upstream = tuple(parse_qsl(str(getattr(options, "harness_upstream_query", "") or "")))
    return targets, pace, rcvbuf, api, upstream


def _target_request(environment: Any, target: str) -> tuple[RequestSpec | None, int]:
    """The request the plugin's --request flags give ``target`` (None = the API's default), and the default
    ``{max_tokens}`` (--upstream-tokens)."""
    options = environment.parsed_options
    requests = parse_requests(str(getattr(options, "harness_requests", "") or ""))
    return requests.get(target), int(getattr(options, "upstream_tokens", 200) or 200)


class StreamingUser(User):
    """A Locust user whose every task is one stream, read and left as :attr:`behaviour` says.

    Users are spread round robin over the targets by their index in this process (offset by the worker's index),
    so every target has the same number of users of each class at the same time.
    """

    abstract = True
    behaviour: ClassVar[Behaviour] = Behaviour()
    wait_time = constant(0.5)
    model: ClassVar[str] = "stream-harness"

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        counter = _user_counters.setdefault(type(self), itertools.count())
        index = next(counter) + int(getattr(environment.runner, "worker_index", 0) or 0)
        targets, pace, rcvbuf, api, upstream = settings_from_options(environment)
        target = targets[index % len(targets)]
        request, max_tokens = _target_request(environment, target.name)
        behaviour = self.behaviour
        worker = "local"
        runner = environment.runner
        if runner is not None and type(runner).__name__ == "WorkerRunner":
            worker = str(runner.client_id)
        self.settings = StreamSettings(
            target=target,
            pace=pace,
            rcvbuf_bytes=rcvbuf,
            api=(request.api if request is not None else None) or behaviour.api or api,
            worker=worker,
            model=self.model,
            upstream=upstream,
            request=request,
            max_tokens=max_tokens,
        )

    @task
    def stream(self) -> None:
        """One stream."""
        Stream(self.behaviour, self.settings, self.environment.events.request.fire).run()


def record_rows(records: list[ClientRecord]) -> list[Mapping[str, Any]]:
    """Rows for clients.csv (and for the message that carries them from a worker to the master)."""
    return [record.row() for record in records]
