"""Token decoders: what counts as a token in a response body, one per streaming API (contract 6).

The read loop calls :meth:`TokenDecoder.feed` once per read with the body bytes that read brought and takes the
number of content tokens completed by them; :attr:`TokenDecoder.finished` says the API's own terminator was seen
(a body that ends without it is not complete). Timestamps are the loop's, taken per read, so a decoder never reads
a clock. Decoders are fed whole reads: keep per-read work in C (``bytes.split``, ``bytes.count``) rather than a
Python call per line or per event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from harness.load.ai_decoders import AnthropicTokens, LineTokens, OpenAIChatTokens, OpenAIResponsesTokens
from harness.load.sse import SseDecoder

if TYPE_CHECKING:
    from harness.load.apis import Api
    from harness.load.stream_client import StreamConnection

__all__ = ["ChunkedTokens", "SseTokens", "TokenDecoder", "decoder_for"]


class TokenDecoder(Protocol):
    """Counts the content tokens of one response body."""

    @property
    def finished(self) -> bool:
        """The API's own terminator was seen."""
        ...

    def feed(self, data: bytes) -> int:
        """The content tokens completed by ``data`` (the body bytes of one read)."""
        ...


class SseTokens:
    """``sse``: any event stream; every event with data is a token (a literal ``[DONE]`` is not), the end is the
    body's clean end."""

    __slots__ = ("_conn", "_events")

    def __init__(self, conn: StreamConnection) -> None:
        self._conn = conn
        self._events = SseDecoder().feed_raw

    @property
    def finished(self) -> bool:
        return self._conn.body_complete

    def feed(self, data: bytes) -> int:
        return sum(1 for _, body, _ in self._events(data) if body != b"[DONE]")


class ChunkedTokens:
    """``chunked``: every HTTP chunk is a token (the connection counts them); the end is the last chunk."""

    __slots__ = ("_conn", "_seen")

    def __init__(self, conn: StreamConnection) -> None:
        self._conn = conn
        self._seen = 0

    @property
    def finished(self) -> bool:
        return self._conn.body_complete

    def feed(self, data: bytes) -> int:
        chunks = self._conn.chunks_received
        count, self._seen = chunks - self._seen, chunks
        return count


def decoder_for(api: Api, conn: StreamConnection) -> TokenDecoder:
    """The decoder of one response body of ``api`` read from ``conn``."""
    if api == "chunked":
        return ChunkedTokens(conn)
    if api == "sse":
        return SseTokens(conn)
    return _AI_DECODERS[api]()


_AI_DECODERS: dict[str, type[LineTokens]] = {
    "openai-chat": OpenAIChatTokens,
    "openai-responses": OpenAIResponsesTokens,
    "anthropic": AnthropicTokens,
}
