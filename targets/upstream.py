"""The instrument: a fake AI model service that streams tokens and counts what it produced and for whom.

Routes:
    POST /v1/chat/completions   OpenAI-compatible; ``"stream": true`` gives Server-Sent Events
                                (``data: {chat.completion.chunk}`` ... ``data: [DONE]``), false one JSON completion
    GET  /v1/stream             the same tokens as a plain chunked byte stream
    GET  /__harness/stats       open streams, streams started, tokens produced, streams ended by reason
    GET  /__harness/streams     one record per stream (times in epoch seconds)

A token is produced only once the previous one was accepted by the socket (written, and the transport drained
when it was over its high-water mark), so back-pressure from a slow reader reaches ``tokens_produced``.
Per-request overrides: ``max_tokens`` in the body, and the query parameters ``tokens``, ``token_bytes``,
``rate`` (tokens per second, 0 = as fast as the reader takes them), ``header_delay`` and ``first_token_delay``
(seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from targets.common import (
    SocketTuning,
    add_server_arguments,
    bad_request,
    new_app,
    run_server,
    stream_id_of,
    tune_response_transport,
)

__all__ = ["LIMITS", "StreamSettings", "UpstreamState", "create_app", "main"]

LIMITS = {"tokens": 1_000_000, "token_bytes": 65_536, "rate": 1_000_000.0, "delay": 600.0}
"""Caps on per-request and default settings; larger values are answered with 400."""


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """How one stream is produced."""

    tokens: int
    token_bytes: int
    rate: float
    """Tokens per second; 0 = as fast as the reader accepts them."""
    header_delay_s: float
    first_token_delay_s: float

    def overridden(self, query: Mapping[str, str], body: Mapping[str, Any] | None) -> StreamSettings:
        """These settings with the request's overrides applied; 400 names a bad field and value."""
        changes: dict[str, Any] = {}
        if body is not None and body.get("max_tokens") is not None:
            changes["tokens"] = _whole(body["max_tokens"], "max_tokens", LIMITS["tokens"])
        for name, attr in (("tokens", "tokens"), ("token_bytes", "token_bytes")):
            if name in query:
                changes[attr] = _whole(query[name], name, LIMITS[name])
        if "rate" in query:
            changes["rate"] = _number(query["rate"], "rate", LIMITS["rate"])
        for name in ("header_delay", "first_token_delay"):
            if name in query:
                changes[f"{name}_s"] = _number(query[name], name, LIMITS["delay"])
        if changes.get("token_bytes", self.token_bytes) < 1:
            bad_request(f"token_bytes must be >= 1, got {changes['token_bytes']}")
        return dataclasses.replace(self, **changes)


def _whole(value: object, name: str, cap: float) -> int:
    try:
        number = int(str(value)) if not isinstance(value, bool) else -1
    except ValueError:
        bad_request(f"{name} must be a whole number from 0 to {cap:.0f}, got {value!r}")
    if not 0 <= number <= cap:
        bad_request(f"{name} must be a whole number from 0 to {cap:.0f}, got {value!r}")
    return number


def _number(value: str, name: str, cap: float) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not 0 <= number <= cap:  # also rejects nan
        bad_request(f"{name} must be a number from 0 to {cap:g}, got {value!r}")
    return number


@dataclass(slots=True)
class StreamRecord:
    """One stream as the upstream saw it; times are epoch seconds."""

    id: str
    route: str
    start: float
    first_token: float | None = None
    end: float | None = None
    tokens_sent: int = 0
    bytes_sent: int = 0
    end_reason: str | None = None
    """completed | peer_closed | server_stopped; None while open."""


@dataclass(slots=True)
class UpstreamState:
    """Counters and per-stream records; the ground truth the harness checks relays against."""

    defaults: StreamSettings
    tuning: SocketTuning
    model: str = "stream-harness-fake"
    records: list[StreamRecord] = field(default_factory=list)
    open_streams: int = 0
    tokens_produced: int = 0
    bytes_produced: int = 0
    ended: Counter[str] = field(default_factory=Counter)
    stopping: bool = False

    def open(self, stream_id: str, route: str) -> StreamRecord:
        record = StreamRecord(id=stream_id, route=route, start=time.time())
        self.records.append(record)
        self.open_streams += 1
        return record

    def produced(self, record: StreamRecord, nbytes: int) -> None:
        if record.tokens_sent == 0:
            record.first_token = time.time()
        record.tokens_sent += 1
        record.bytes_sent += nbytes
        self.tokens_produced += 1
        self.bytes_produced += nbytes

    def close(self, record: StreamRecord, reason: str) -> None:
        if record.end_reason is not None:
            return
        record.end = time.time()
        record.end_reason = "server_stopped" if self.stopping and reason == "peer_closed" else reason
        self.open_streams -= 1
        self.ended[record.end_reason] += 1

    def stats(self) -> dict[str, Any]:
        return {
            "open_streams": self.open_streams,
            "streams_started": len(self.records),
            "tokens_produced": self.tokens_produced,
            "bytes_produced": self.bytes_produced,
            "ended": {reason: self.ended.get(reason, 0) for reason in ("completed", "peer_closed")} | dict(self.ended),
            "asyncio_tasks": len(asyncio.all_tasks()),
            "time": time.time(),
        }


STATE = web.AppKey("state", UpstreamState)


class Encoder(Protocol):
    content_type: str

    def token(self, index: int, text: str) -> bytes: ...

    def end(self) -> bytes: ...


class SseEncoder:
    """OpenAI ``chat.completion.chunk`` events; the JSON around the content is built once per stream."""

    content_type = "text/event-stream"

    def __init__(self, completion_id: str, model: str) -> None:
        head = json.dumps(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
            },
            separators=(",", ":"),
        )[:-1]
        self._first = f'data: {head},"choices":[{{"index":0,"delta":{{"role":"assistant","content":'
        self._next = f'data: {head},"choices":[{{"index":0,"delta":{{"content":'
        self._tail = '},"logprobs":null,"finish_reason":null}]}\n\n'
        self._end = f'data: {head},"choices":[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"stop"}}]}}\n\n'
        self._sent_first = False

    def token(self, index: int, text: str) -> bytes:
        prefix = self._next if self._sent_first else self._first
        self._sent_first = True
        return (prefix + json.dumps(text) + self._tail).encode()

    def end(self) -> bytes:
        return (self._end + "data: [DONE]\n\n").encode()


class PlainEncoder:
    """The tokens' bytes as they are, in a chunked body."""

    content_type = "text/plain; charset=utf-8"

    def token(self, index: int, text: str) -> bytes:
        return text.encode()

    def end(self) -> bytes:
        return b""


def token_text(index: int, size: int) -> str:
    """Token ``index`` as exactly ``size`` ASCII bytes: ``t17-----...`` then a space, so order can be checked."""
    label = f"t{index}"
    if size <= len(label):
        return label[:size]
    return label.ljust(size - 1, "-") + " "


async def _stream_tokens(
    request: web.Request, settings: StreamSettings, stream_id: str, encoder: Encoder
) -> web.StreamResponse:
    state = request.app[STATE]
    record = state.open(stream_id, request.path)
    response = web.StreamResponse(headers={"Content-Type": encoder.content_type, "Cache-Control": "no-cache"})
    response.headers["X-Request-ID"] = stream_id
    loop = asyncio.get_running_loop()
    try:
        await asyncio.sleep(settings.header_delay_s)
        tune_response_transport(request, state.tuning)
        writer = await response.prepare(request)
        assert writer is not None
        await asyncio.sleep(settings.first_token_delay_s)
        interval = 1.0 / settings.rate if settings.rate else 0.0
        due = loop.time()
        for index in range(settings.tokens):
            if interval:
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                # After back-pressure held a token up, the next one is due an interval after it, not at once.
                due = max(due + interval, loop.time())
            chunk = encoder.token(index, token_text(index, settings.token_bytes))
            await response.write(chunk)
            # response.write drains only every 64 KiB; drain per token so the next one waits for the socket.
            await writer.drain()
            state.produced(record, settings.token_bytes)
        await response.write(encoder.end())
        await response.write_eof()
        state.close(record, "completed")
    except asyncio.CancelledError:
        state.close(record, "peer_closed")
        raise
    except ConnectionError:
        # A write found the peer gone. Returning (not raising) keeps aiohttp from logging a 500 for it.
        state.close(record, "peer_closed")
    finally:
        # Any other exception also ends the stream; an open record would look like a leak.
        state.close(record, "error")
    return response


async def chat_completions(request: web.Request) -> web.StreamResponse:
    try:
        body = await request.json()
    except ValueError:
        bad_request("request body must be a JSON object")
    if not isinstance(body, dict):
        bad_request(f"request body must be a JSON object, got {type(body).__name__}")
    state = request.app[STATE]
    settings = state.defaults.overridden(request.query, body)
    stream_id = stream_id_of(request, body)
    model = body["model"] if isinstance(body.get("model"), str) else state.model
    if body.get("stream", False) is True:
        return await _stream_tokens(request, settings, stream_id, SseEncoder(f"chatcmpl-{stream_id}", model))
    return await _complete(request, settings, stream_id, model)


async def _complete(request: web.Request, settings: StreamSettings, stream_id: str, model: str) -> web.Response:
    """The non-streaming answer: all tokens at once, after the time streaming them would have taken."""
    state = request.app[STATE]
    record = state.open(stream_id, request.path)
    try:
        streaming_s = settings.tokens / settings.rate if settings.rate else 0.0
        await asyncio.sleep(settings.header_delay_s + settings.first_token_delay_s + streaming_s)
        text = "".join(token_text(i, settings.token_bytes) for i in range(settings.tokens))
        for _ in range(settings.tokens):
            state.produced(record, settings.token_bytes)
        payload = {
            "id": f"chatcmpl-{stream_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": 0,
                "completion_tokens": settings.tokens,
                "total_tokens": settings.tokens,
            },
        }
        response = web.json_response(payload, headers={"X-Request-ID": stream_id})
        state.close(record, "completed")
        return response
    finally:
        state.close(record, "peer_closed")


async def plain_stream(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    settings = state.defaults.overridden(request.query, None)
    return await _stream_tokens(request, settings, stream_id_of(request), PlainEncoder())


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].stats())


async def streams(request: web.Request) -> web.Response:
    return web.json_response([dataclasses.asdict(record) for record in request.app[STATE].records])


async def _mark_stopping(app: web.Application) -> None:
    app[STATE].stopping = True


def create_app(defaults: StreamSettings, tuning: SocketTuning) -> web.Application:
    """The upstream application with ``defaults`` for requests that do not override them."""
    app = new_app()
    app[STATE] = UpstreamState(defaults=defaults, tuning=tuning)
    app.on_shutdown.append(_mark_stopping)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/stream", plain_stream)
    app.router.add_get("/__harness/stats", stats)
    app.router.add_get("/__harness/streams", streams)
    return app


def _capped(kind: type[int] | type[float], cap: float, minimum: float = 0) -> Any:
    def convert(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not minimum <= value <= cap:
            raise argparse.ArgumentTypeError(f"expected a number from {minimum:g} to {cap:g}, got {text!r}")
        return value

    return convert


def add_stream_arguments(parser: argparse.ArgumentParser) -> None:
    """The upstream's stream defaults; ``harness serve`` and the Locust plugin pass them through."""
    parser.add_argument(
        "--tokens", type=_capped(int, LIMITS["tokens"]), default=200, help="tokens per stream (default: 200)"
    )
    parser.add_argument(
        "--token-bytes",
        type=_capped(int, LIMITS["token_bytes"], 1),
        default=64,
        help="bytes of content per token (default: 64)",
    )
    parser.add_argument(
        "--rate",
        type=_capped(float, LIMITS["rate"]),
        default=50.0,
        help="tokens per second per stream; 0 = as fast as the reader takes them (default: 50)",
    )
    parser.add_argument(
        "--header-delay",
        type=_capped(float, LIMITS["delay"]),
        default=0.0,
        help="seconds before the response headers (default: 0)",
    )
    parser.add_argument(
        "--first-token-delay",
        type=_capped(float, LIMITS["delay"]),
        default=0.0,
        help="seconds between the headers and the first token (default: 0)",
    )


def settings_from_args(args: argparse.Namespace) -> StreamSettings:
    return StreamSettings(
        tokens=args.tokens,
        token_bytes=args.token_bytes,
        rate=args.rate,
        header_delay_s=args.header_delay,
        first_token_delay_s=args.first_token_delay,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m targets.upstream", description=__doc__.splitlines()[0])
    add_server_arguments(parser)
    add_stream_arguments(parser)
    args = parser.parse_args(argv)
    app = create_app(settings_from_args(args), SocketTuning.from_args(args))
    return run_server(app, args, "upstream")


if __name__ == "__main__":
    raise SystemExit(main())
