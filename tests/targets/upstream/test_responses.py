"""OpenAI Responses as OpenAI sends them: typed events with sequence numbers, deltas, response.completed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from targets.upstream import token_text
from tests.targets.upstream.conftest import sse_events

START = ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]
END = ["response.output_text.done", "response.content_part.done", "response.output_item.done"]


@pytest.mark.asyncio
async def test_stream_is_typed_events_in_order_ending_with_completed(client: TestClient[Any, Any]) -> None:
    response = await client.post("/v1/responses?tokens=4", json={"input": "say hi", "stream": True, "model": "m"})
    assert response.status == 200
    events = sse_events(await response.text())
    payloads = [json.loads(data) for _, data in events]
    assert [kind for kind, _ in events] == [payload["type"] for payload in payloads]
    assert [kind for kind, _ in events] == [*START, *["response.output_text.delta"] * 4, *END, "response.completed"]
    assert [payload["sequence_number"] for payload in payloads] == list(range(len(payloads)))
    text = "".join(token_text(i, 8) for i in range(4))
    assert [payload["delta"] for payload in payloads[4:8]] == [token_text(i, 8) for i in range(4)]
    assert payloads[8]["text"] == text
    assert payloads[0]["response"]["status"] == "in_progress"
    final = payloads[-1]["response"]
    assert final["status"] == "completed"
    assert final["output"][0]["content"][0]["text"] == text
    assert final["usage"]["output_tokens"] == 4
    assert final["usage"]["input_tokens"] == 2


@pytest.mark.asyncio
async def test_max_output_tokens_ends_it_incomplete(client: TestClient[Any, Any]) -> None:
    body = {"input": [{"role": "user", "content": [{"type": "input_text", "text": "x"}]}], "stream": True}
    events = sse_events(await (await client.post("/v1/responses", json=body | {"max_output_tokens": 2})).text())
    assert events[-1][0] == "response.incomplete"
    final = json.loads(events[-1][1])["response"]
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["usage"]["output_tokens"] == 2


@pytest.mark.asyncio
async def test_whole_answer_is_one_response_object(client: TestClient[Any, Any]) -> None:
    body = await (await client.post("/v1/responses", json={"input": "x", "model": "m"})).json()
    assert (body["object"], body["status"], body["model"]) == ("response", "completed", "m")
    assert body["output"][0]["content"][0]["text"] == "".join(token_text(i, 8) for i in range(5))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": [{"role": "user", "content": "hi"}], "stream": True}, "input"),
        ({"input": 5}, "input"),
        ({"input": ["x"]}, "input[0]"),
        ({"input": "x", "max_output_tokens": "lots"}, "max_output_tokens"),
    ],
)
@pytest.mark.asyncio
async def test_wrong_shape_is_400_in_openai_format_naming_the_field(
    client: TestClient[Any, Any], body: dict[str, Any], field: str
) -> None:
    response = await client.post("/v1/responses", json=body)
    assert response.status == 400
    error = (await response.json())["error"]
    assert (error["param"], error["type"]) == (field, "invalid_request_error")
    assert error["message"].startswith(field)
