"""Producing one stream, whatever its API: the delays, the pacing, one token per accepted write, the books.

A token is produced only once the previous one was accepted by the socket (written, and the transport drained
when it was over its high-water mark), so back-pressure from a slow reader reaches ``tokens_produced``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web

from targets.common import tune_response_transport
from targets.upstream.settings import StreamSettings
from targets.upstream.state import STATE

__all__ = ["Encoder", "answer_whole", "stream_tokens", "text_of", "token_text"]


class Encoder(Protocol):
    """One API's framing of a stream."""

    content_type: str

    def start(self) -> bytes:
        """What the API sends right after the headers, before any content (its control events)."""
        ...

    def token(self, index: int, text: str) -> bytes:
        """Token ``index`` framed as the API frames a content delta."""
        ...

    def end(self, tokens: int) -> bytes:
        """The API's own terminator after ``tokens`` tokens."""
        ...


def token_text(index: int, size: int) -> str:
    """Token ``index`` as exactly ``size`` ASCII bytes: ``t17-----...`` then a space, so order can be checked."""
    label = f"t{index}"
    if size <= len(label):
        return label[:size]
    return label.ljust(size - 1, "-") + " "


def text_of(tokens: int, size: int) -> str:
    """The whole text of a stream of ``tokens`` tokens (rebuilt when needed, never kept per stream)."""
    return "".join(token_text(i, size) for i in range(tokens))


async def stream_tokens(
    request: web.Request, settings: StreamSettings, identity: tuple[str, str], api: str, encoder: Encoder
) -> web.StreamResponse:
    """Stream ``settings.tokens`` tokens framed by ``encoder``, recording the stream and how it ended."""
    state = request.app[STATE]
    stream_id, channel = identity
    record = state.open(stream_id, request.path, api, channel)
    response = web.StreamResponse(headers={"Content-Type": encoder.content_type, "Cache-Control": "no-cache"})
    response.headers["X-Request-ID"] = stream_id
    loop = asyncio.get_running_loop()
    try:
        await asyncio.sleep(settings.header_delay_s)
        tune_response_transport(request, state.tuning)
        writer = await response.prepare(request)
        assert writer is not None
        opening = encoder.start()
        if opening:
            await response.write(opening)
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
            if not interval and index % 64 == 63:
                # drain() returns at once while the reader keeps up: without a yield, one stream sent as fast as
                # it is read would hold the event loop (other streams, /__harness/stats) until it ended.
                await asyncio.sleep(0)
        await response.write(encoder.end(settings.tokens))
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


async def answer_whole(
    request: web.Request,
    settings: StreamSettings,
    identity: tuple[str, str],
    api: str,
    answer: Callable[[str, int], dict[str, Any]],
) -> web.Response:
    """The non-streaming answer ``answer(text, tokens)``, after the time streaming the tokens would have taken."""
    state = request.app[STATE]
    stream_id, channel = identity
    record = state.open(stream_id, request.path, api, channel)
    try:
        streaming_s = settings.tokens / settings.rate if settings.rate else 0.0
        await asyncio.sleep(settings.header_delay_s + settings.first_token_delay_s + streaming_s)
        for _ in range(settings.tokens):
            state.produced(record, settings.token_bytes)
        payload = answer(text_of(settings.tokens, settings.token_bytes), settings.tokens)
        response = web.json_response(payload, headers={"X-Request-ID": stream_id})
        state.close(record, "completed")
        return response
    finally:
        state.close(record, "peer_closed")
