"""Anthropic Messages as Anthropic sends them: message_start, content block, ping, text deltas, message_stop."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from targets.upstream import token_text
from tests.targets.upstream.conftest import sse_events

MESSAGES = [{"role": "user", "content": [{"type": "text", "text": "hello you"}]}]


@pytest.mark.asyncio
async def test_stream_is_named_events_in_order_ending_with_message_stop(client: TestClient[Any, Any]) -> None:
    body = {"messages": MESSAGES, "max_tokens": 100, "stream": True, "model": "claude-x"}
    response = await client.post("/v1/messages?tokens=3", json=body)
    assert response.status == 200
    events = sse_events(await response.text())
    payloads = [json.loads(data) for _, data in events]
    assert [kind for kind, _ in events] == [payload["type"] for payload in payloads]
    assert [kind for kind, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 3,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    message = payloads[0]["message"]
    assert (message["role"], message["content"], message["model"], message["stop_reason"]) == (
        "assistant",
        [],
        "claude-x",
        None,
    )
    assert payloads[1]["content_block"] == {"type": "text", "text": ""}
    assert [p["delta"] for p in payloads[3:6]] == [{"type": "text_delta", "text": token_text(i, 8)} for i in range(3)]
    assert payloads[7]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert payloads[7]["usage"] == {"output_tokens": 3}


@pytest.mark.asyncio
async def test_max_tokens_caps_it_with_stop_reason_max_tokens(client: TestClient[Any, Any]) -> None:
    body = {"messages": MESSAGES, "max_tokens": 2}
    answer = await (await client.post("/v1/messages", json=body)).json()
    assert answer["type"] == "message"
    assert answer["content"] == [{"type": "text", "text": token_text(0, 8) + token_text(1, 8)}]
    assert (answer["stop_reason"], answer["usage"]["output_tokens"], answer["usage"]["input_tokens"]) == (
        "max_tokens",
        2,
        2,
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": MESSAGES, "stream": True}, "max_tokens"),
        ({"input": "hi", "max_tokens": 5}, "messages"),
        ({"messages": MESSAGES, "max_tokens": 0}, "max_tokens"),
        ({"messages": [{"content": "no role"}], "max_tokens": 5}, "messages[0]"),
    ],
)
@pytest.mark.asyncio
async def test_wrong_shape_is_400_in_anthropic_format_naming_the_field(
    client: TestClient[Any, Any], body: dict[str, Any], field: str
) -> None:
    response = await client.post("/v1/messages", json=body)
    assert response.status == 400
    answer = await response.json()
    assert answer["type"] == "error"
    assert answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["message"].startswith(field)


@pytest.mark.asyncio
async def test_the_tag_is_found_in_a_system_prompt_too(client: TestClient[Any, Any]) -> None:
    system = [{"type": "text", "text": "be brief [stream-harness id=from-system tokens=2]"}]
    body = {"messages": MESSAGES, "max_tokens": 50, "system": system}
    answer = await (await client.post("/v1/messages", json=body)).json()
    assert answer["usage"]["output_tokens"] == 2
    records = await (await client.get("/__harness/streams")).json()
    assert (records[-1]["id"], records[-1]["id_channel"]) == ("from-system", "prompt")
