"""Token decoders of the generic APIs (``sse``, ``chunked``) and the dispatch by API name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from harness.load.ai_decoders import AnthropicTokens, OpenAIChatTokens, OpenAIResponsesTokens
from harness.load.apis import API_NAMES
from harness.load.decoders import ChunkedTokens, SseTokens, decoder_for


@dataclass
class Body:
    """What the generic decoders read of a connection: whether its body ended cleanly, and its chunks so far."""

    body_complete: bool = False
    chunks_received: int = 0


def test_sse_counts_every_event_with_data_but_done_and_ends_with_the_body() -> None:
    body = Body()
    decoder = SseTokens(cast(Any, body))
    assert decoder.feed(b"data: x\n\n: keep-alive\n\nevent: e\ndata: {}\n\ndata: [DONE]\n\n") == 2
    assert not decoder.finished
    body.body_complete = True
    assert decoder.finished


def test_sse_events_split_anywhere_count_once() -> None:
    stream = b"data: a\r\n\r\ndata: b\n\ndata: c\r\rdata: [DONE]\n\n"
    for cut in range(1, len(stream)):
        decoder = SseTokens(cast(Any, Body()))
        assert decoder.feed(stream[:cut]) + decoder.feed(stream[cut:]) == 3, cut


def test_chunked_counts_the_connection_s_chunks_per_read() -> None:
    body = Body()
    decoder = ChunkedTokens(cast(Any, body))
    body.chunks_received = 3
    assert decoder.feed(b"abc") == 3
    body.chunks_received = 4
    assert decoder.feed(b"d") == 1
    body.body_complete = True
    assert decoder.finished


def test_every_api_has_its_decoder() -> None:
    kinds = {name: type(decoder_for(name, cast(Any, Body()))) for name in API_NAMES}
    assert kinds == {
        "openai-chat": OpenAIChatTokens,
        "openai-responses": OpenAIResponsesTokens,
        "anthropic": AnthropicTokens,
        "sse": SseTokens,
        "chunked": ChunkedTokens,
    }
