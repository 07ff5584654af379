"""``GET /v1/stream``: the tokens' bytes as they are, in a chunked body (one chunk per token)."""

from __future__ import annotations

from aiohttp import web

from targets.common import bad_request
from targets.upstream.identity import stream_identity
from targets.upstream.producer import stream_tokens
from targets.upstream.settings import BadField
from targets.upstream.state import STATE

__all__ = ["PlainEncoder", "plain_stream"]


class PlainEncoder:
    """The tokens' bytes as they are, in a chunked body."""

    content_type = "text/plain; charset=utf-8"

    def start(self) -> bytes:
        return b""

    def token(self, index: int, text: str) -> bytes:
        return text.encode()

    def end(self, tokens: int) -> bytes:
        return b""


async def plain_stream(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    try:
        settings = state.defaults.overridden(request.query)
    except BadField as error:
        bad_request(error.message)
    return await stream_tokens(request, settings, stream_identity(request), "chunked", PlainEncoder())
