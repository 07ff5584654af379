"""The fake upstream: OpenAI-compatible SSE, plain chunked, per-request settings, stats, records, bad input."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient

from targets.common import SocketTuning
from targets.upstream import StreamSettings, create_app, token_text

DEFAULTS = StreamSettings(tokens=5, token_bytes=8, rate=0.0, header_delay_s=0.0, first_token_delay_s=0.0)


@pytest_asyncio.fixture
async def client(aiohttp_client: Any) -> TestClient[Any, Any]:
    result: TestClient[Any, Any] = await aiohttp_client(create_app(DEFAULTS, SocketTuning(4096, 4096)))
    return result


def parse_sse(text: str) -> list[str]:
    """The data fields of a well-formed SSE body, checking the framing on the way."""
    assert text.endswith("\n\n")
    events = text[:-2].split("\n\n")
    payloads = []
    for event in events:
        assert event.startswith("data: "), event
        payloads.append(event[len("data: ") :])
    return payloads


@pytest.mark.asyncio
async def test_sse_stream_is_openai_chat_completion_chunks_in_order(client: TestClient[Any, Any]) -> None:
    response = await client.post("/v1/chat/completions?token_bytes=12", json={"stream": True, "max_tokens": 7})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    payloads = parse_sse(await response.text())
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(payload) for payload in payloads[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk["id"] for chunk in chunks}) == 1
    contents = [chunk["choices"][0]["delta"].get("content") for chunk in chunks[:-1]]
    assert contents == [token_text(i, 12) for i in range(7)]
    assert all(len(content.encode()) == 12 for content in contents)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}


@pytest.mark.asyncio
async def test_plain_stream_gives_the_same_tokens(client: TestClient[Any, Any]) -> None:
    response = await client.get("/v1/stream?tokens=4&token_bytes=10")
    assert response.status == 200
    assert await response.text() == "".join(token_text(i, 10) for i in range(4))


@pytest.mark.asyncio
async def test_non_streaming_completion_is_one_json_object(client: TestClient[Any, Any]) -> None:
    response = await client.post("/v1/chat/completions", json={"stream": False, "max_tokens": 3, "model": "m1"})
    body = await response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "m1"
    assert body["choices"][0]["message"]["content"] == "".join(token_text(i, 8) for i in range(3))
    assert body["usage"]["completion_tokens"] == 3


@pytest.mark.asyncio
async def test_stream_id_from_header_then_body_user(client: TestClient[Any, Any]) -> None:
    await (await client.post("/v1/chat/completions", json={"stream": True, "user": "from-body"})).read()
    await (
        await client.post(
            "/v1/chat/completions", json={"stream": True, "user": "ignored"}, headers={"X-Request-ID": "from-header"}
        )
    ).read()
    await (await client.get("/v1/stream?user=from-query")).read()
    records = await (await client.get("/__harness/streams")).json()
    assert [record["id"] for record in records] == ["from-body", "from-header", "from-query"]
    assert all(record["end_reason"] == "completed" and record["tokens_sent"] == 5 for record in records)
    assert all(record["start"] <= record["first_token"] <= record["end"] for record in records)


@pytest.mark.asyncio
async def test_stats_count_streams_and_tokens(client: TestClient[Any, Any]) -> None:
    for _ in range(3):
        await (await client.get("/v1/stream")).read()
    stats = await (await client.get("/__harness/stats")).json()
    assert stats["open_streams"] == 0
    assert stats["streams_started"] == 3
    assert stats["tokens_produced"] == 15
    assert stats["bytes_produced"] == 15 * 8
    assert stats["ended"] == {"completed": 3, "peer_closed": 0}


@pytest.mark.asyncio
async def test_delays_are_applied_per_request(client: TestClient[Any, Any]) -> None:
    started = time.monotonic()
    response = await client.get("/v1/stream?header_delay=0.3&first_token_delay=0.3&tokens=1")
    headers_at = time.monotonic()
    await response.read()
    done_at = time.monotonic()
    assert headers_at - started >= 0.3
    assert done_at - headers_at >= 0.25


@pytest.mark.asyncio
async def test_rate_paces_tokens(client: TestClient[Any, Any]) -> None:
    started = time.monotonic()
    await (await client.get("/v1/stream?tokens=11&rate=50")).read()
    assert time.monotonic() - started >= 10 / 50 * 0.9  # 10 intervals between 11 tokens


@pytest.mark.parametrize(
    ("query", "body", "field"),
    [
        ("tokens=-5", None, "tokens"),
        ("tokens=abc", None, "tokens"),
        ("tokens=100000000", None, "tokens"),
        ("token_bytes=0", None, "token_bytes"),
        ("token_bytes=1000000", None, "token_bytes"),
        ("rate=-1", None, "rate"),
        ("rate=nan", None, "rate"),
        ("header_delay=xyz", None, "header_delay"),
        ("first_token_delay=100000", None, "first_token_delay"),
        ("", {"stream": True, "max_tokens": -1}, "max_tokens"),
        ("", {"stream": True, "max_tokens": "many"}, "max_tokens"),
    ],
)
@pytest.mark.asyncio
async def test_bad_values_are_400_naming_field_and_value(
    client: TestClient[Any, Any], query: str, body: dict[str, Any] | None, field: str
) -> None:
    if body is None:
        response = await client.get(f"/v1/stream?{query}")
    else:
        response = await client.post(f"/v1/chat/completions?{query}", json=body)
    assert response.status == 400
    message = (await response.json())["error"]["message"]
    assert message.startswith(field)
    value = query.split("=", 1)[1] if query else str(body and body["max_tokens"])
    assert value in message


@pytest.mark.asyncio
async def test_body_that_is_not_a_json_object_is_400(client: TestClient[Any, Any]) -> None:
    for data in (b"not json", b"[1, 2]"):
        response = await client.post("/v1/chat/completions", data=data)
        assert response.status == 400
        assert "JSON object" in (await response.json())["error"]["message"]


@pytest.mark.asyncio
async def test_unknown_route_and_method_are_json_errors(client: TestClient[Any, Any]) -> None:
    response = await client.get("/v2/nothing")
    assert response.status == 404
    assert (await response.json())["error"]["message"] == "no route GET /v2/nothing"
    response = await client.get("/v1/chat/completions")
    assert response.status == 405


def test_port_in_use_is_one_line_and_exit_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "targets.upstream", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"upstream: port {port} on 127.0.0.1 is already in use (pick another, or 0 for a free one)"
    ]


@pytest.mark.parametrize(
    ("flag", "value"), [("--tokens", "-1"), ("--rate", "fast"), ("--token-bytes", "0"), ("--port", "70000")]
)
def test_bad_flags_exit_2_naming_flag_and_value(flag: str, value: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "targets.upstream", flag, value], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert flag in last
    assert repr(value) in last
