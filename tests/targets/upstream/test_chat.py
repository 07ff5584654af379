"""OpenAI Chat Completions as OpenAI sends them: role-only first chunk, content chunks, finish, usage, [DONE]."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from targets.upstream import token_text
from tests.targets.upstream.conftest import DEFAULTS, sse_events

MESSAGES = [{"role": "user", "content": "hi there"}]


@pytest.mark.asyncio
async def test_stream_is_role_chunk_content_chunks_finish_and_done(client: TestClient[Any, Any]) -> None:
    response = await client.post(
        "/v1/chat/completions?tokens=7&token_bytes=12", json={"stream": True, "messages": MESSAGES, "model": "m"}
    )
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(await response.text())
    assert all(kind is None for kind, _ in events)
    assert events[-1][1] == "[DONE]"
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert {chunk["id"] for chunk in chunks} == {chunks[0]["id"]}
    assert {chunk["model"] for chunk in chunks} == {"m"}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    contents = [chunk["choices"][0]["delta"]["content"] for chunk in chunks[1:-1]]
    assert contents == [token_text(i, 12) for i in range(7)]
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert all("usage" not in chunk for chunk in chunks)


@pytest.mark.asyncio
async def test_include_usage_adds_a_usage_chunk_and_null_usage_before(client: TestClient[Any, Any]) -> None:
    body = {"stream": True, "messages": MESSAGES, "stream_options": {"include_usage": True}, "max_tokens": 3}
    events = sse_events(await (await client.post("/v1/chat/completions", json=body)).text())
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert [chunk["usage"] for chunk in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"  # max_tokens cut it


@pytest.mark.asyncio
async def test_whole_answer_is_one_chat_completion(client: TestClient[Any, Any]) -> None:
    response = await client.post("/v1/chat/completions", json={"messages": MESSAGES, "model": "m1"})
    body = await response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "m1"
    assert body["choices"][0]["message"]["content"] == "".join(token_text(i, 8) for i in range(DEFAULTS.tokens))
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == DEFAULTS.tokens


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": "hi", "stream": True}, "messages"),
        ({"messages": [], "stream": True}, "messages"),
        ({"messages": ["hi"]}, "messages[0]"),
        ({"messages": MESSAGES, "stream": "yes"}, "stream"),
        ({"messages": MESSAGES, "max_tokens": -1}, "max_tokens"),
        ({"messages": MESSAGES, "stream_options": 3}, "stream_options"),
    ],
)
@pytest.mark.asyncio
async def test_wrong_shape_is_400_in_openai_format_naming_the_field(
    client: TestClient[Any, Any], body: dict[str, Any], field: str
) -> None:
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == field
    assert error["message"].startswith(field)
