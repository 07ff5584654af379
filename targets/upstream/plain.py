"""``GET /v1/stream``: the tokens' bytes as they are, in a chunked body (one chunk per token)."""

from __future__ import annotations

from aiohttp import web

from targets.common import stream_id_of
from targets.upstream.producer import stream_tokens
from targets.upstream.state import STATE

__all__ = ["PlainEncoder", "plain_stream"]


class PlainEncoder:
    """The tokens' bytes as they are, in a chunked body."""

    content_type = "text/plain; charset=utf-8"

    def token(self, index: int, text: str) -> bytes:
        return text.encode()

    def end(self) -> bytes:
        return b""


async def plain_stream(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    settings = state.defaults.overridden(request.query, None)
    return await stream_tokens(request, settings, stream_id_of(request), PlainEncoder())
