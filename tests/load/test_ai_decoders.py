"""The AI APIs' decoders on what the fake upstream sends, on what other servers send (spaces, CRLF, role and content
in one chunk, keep-alive comments), split at every byte, with and without their terminators."""

from __future__ import annotations

import json

import pytest

from harness.load.ai_decoders import AnthropicTokens, LineTokens, OpenAIChatTokens, OpenAIResponsesTokens
from targets.upstream.ai import AiRequest
from targets.upstream.chat import ChatEncoder
from targets.upstream.messages import MessagesEncoder
from targets.upstream.producer import token_text
from targets.upstream.responses import ResponsesEncoder
from targets.upstream.settings import StreamSettings

REQUEST = AiRequest("m", True, ("hi",), None, include_usage=True)
SETTINGS = StreamSettings(tokens=4, token_bytes=7, rate=0, header_delay_s=0, first_token_delay_s=0)


def fake_upstream_body(encoder: ChatEncoder | ResponsesEncoder | MessagesEncoder, tokens: int = 4) -> bytes:
    parts = [encoder.start()] + [encoder.token(i, token_text(i, 7)) for i in range(tokens)] + [encoder.end(tokens)]
    return b"".join(parts)


BODIES = {
    OpenAIChatTokens: fake_upstream_body(ChatEncoder(REQUEST, "c-1", capped=False)),
    OpenAIResponsesTokens: fake_upstream_body(ResponsesEncoder(REQUEST, "r-1", SETTINGS, capped=False)),
    AnthropicTokens: fake_upstream_body(MessagesEncoder(REQUEST, "m-1", capped=False)),
}
TERMINATOR_AT = {
    OpenAIChatTokens: b"data: [DONE]",
    OpenAIResponsesTokens: b"event: response.completed",
    AnthropicTokens: b"event: message_stop",
}


@pytest.mark.parametrize("kind", list(BODIES))
def test_the_fake_upstream_s_stream_is_its_tokens_and_its_terminator(kind: type[LineTokens]) -> None:
    body = BODIES[kind]
    for cut in range(1, len(body), 7):
        decoder = kind()
        assert decoder.feed(body[:cut]) + decoder.feed(body[cut:]) == 4, cut
        assert decoder.finished
    start_only = kind()
    assert start_only.feed(body[: body.index(b"t0---")]) == 0  # control events before the first delta: no token
    cut_off = kind()
    assert cut_off.feed(body[: body.index(TERMINATOR_AT[kind])]) == 4
    assert not cut_off.finished


def test_chat_as_other_servers_write_it() -> None:
    def chunk(delta: dict[str, object], **extra: object) -> bytes:
        payload = {"id": "x", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}], **extra}
        return b"data: " + json.dumps(payload).encode() + b"\r\n\r\n"  # json.dumps' spaces, sse-starlette's CRLF

    body = (
        b": keep-alive\r\n\r\n"
        + chunk({"role": "assistant"})
        + chunk({"content": None})
        + chunk({"content": ""})
        + chunk({"role": "assistant", "content": "Hi"})  # role and first content in one chunk
        + chunk({"content": 'say "content": "x"'})  # the field name inside generated text
        + chunk({}, usage={"prompt_tokens": 1})
        + b"data:[DONE]\r\n\r\n"
    )
    for cut in range(1, len(body)):
        decoder = OpenAIChatTokens()
        assert decoder.feed(body[:cut]) + decoder.feed(body[cut:]) == 2, cut
        assert decoder.finished


def test_responses_and_anthropic_without_event_lines_and_with_spaces() -> None:
    responses = OpenAIResponsesTokens()
    delta = {"type": "response.output_text.delta", "delta": "a"}
    assert responses.feed(b"data: " + json.dumps(delta).encode() + b"\n\n") == 1
    assert responses.feed(b'data: {"type": "response.incomplete", "response": {}}\n\n') == 0
    assert responses.finished
    anthropic = AnthropicTokens()
    ping = b'event: ping\ndata: {"type": "ping"}\n\n'
    text = b'event: content_block_delta\ndata: {"type": "content_block_delta", "delta": {"type": "text_delta"}}\n\n'
    assert anthropic.feed(ping + text + text) == 2
    assert not anthropic.finished
    assert anthropic.feed(b'event: message_stop\ndata: {"type": "message_stop"}\n\n') == 0
    assert anthropic.finished


def test_a_terminator_inside_generated_text_is_a_token_not_the_end() -> None:
    decoder = OpenAIChatTokens()
    assert decoder.feed(b'data: {"choices":[{"delta":{"content":"data: [DONE]"}}]}\n\n') == 1
    assert not decoder.finished
    anthropic = AnthropicTokens()
    text = (
        b'data: {"type":"content_block_delta","delta":{"type":"text_delta","text":"\\"type\\":\\"message_stop\\""}}\n\n'
    )
    assert anthropic.feed(text) == 1
    assert not anthropic.finished
