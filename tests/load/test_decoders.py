"""Token decoders: tokens per read, the terminator, events split across reads."""

from __future__ import annotations

from harness.load.decoders import SseTokens

OPENAI = (
    b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'
    b'data: {"choices":[{"delta":{"content":"b"}}]}\n\n'
    b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


def test_sse_counts_content_events_and_sees_done() -> None:
    decoder = SseTokens()
    assert decoder.feed(OPENAI) == 2
    assert decoder.finished


def test_sse_events_split_anywhere_count_once() -> None:
    for cut in range(1, len(OPENAI)):
        decoder = SseTokens()
        assert decoder.feed(OPENAI[:cut]) + decoder.feed(OPENAI[cut:]) == 2, cut
        assert decoder.finished


def test_sse_without_done_is_not_finished() -> None:
    decoder = SseTokens()
    assert decoder.feed(b"data: x\n\ndata: y\n\n: keep-alive\n\n") == 2
    assert not decoder.finished
