"""The fake upstream as an app: plain chunked, per-request settings, stats, records, ids and channels, bad input.

Each AI API's own framing is tested in test_chat.py, test_responses.py and test_messages.py."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.targets.upstream.conftest import DEFAULTS

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.asyncio
async def test_stream_id_and_its_channel_from_tag_header_user_query_or_none(client: TestClient[Any, Any]) -> None:
    tagged = [{"role": "user", "content": "hi [stream-harness id=from-tag]"}]
    await (await client.post("/v1/chat/completions", json={"stream": True, "messages": MESSAGES, "user": "u1"})).read()
    await (
        await client.post(
            "/v1/chat/completions",
            json={"stream": True, "messages": MESSAGES, "user": "ignored"},
            headers={"X-Request-ID": "from-header"},
        )
    ).read()
    await (
        await client.post(
            "/v1/chat/completions?user=q",
            json={"stream": True, "messages": tagged, "user": "ignored"},
            headers={"X-Request-ID": "ignored"},
        )
    ).read()
    await (await client.get("/v1/stream?user=from-query")).read()
    await (await client.get("/v1/stream")).read()
    records = await (await client.get("/__harness/streams")).json()
    assert [(r["id"], r["id_channel"], r["api"]) for r in records[:4]] == [
        ("u1", "user", "openai-chat"),
        ("from-header", "header", "openai-chat"),
        ("from-tag", "prompt", "openai-chat"),
        ("from-query", "query", "chunked"),
    ]
    assert records[4]["id"].startswith("anon-")
    assert records[4]["id_channel"] == "none"
    assert all(record["end_reason"] == "completed" and record["tokens_sent"] == 5 for record in records)
    assert all(record["start"] <= record["first_token"] <= record["end"] for record in records)


@pytest.mark.asyncio
async def test_tag_settings_win_over_query_and_a_mangled_tag_is_ignored_and_counted(
    client: TestClient[Any, Any],
) -> None:
    def body(text: str) -> dict[str, Any]:
        return {"stream": True, "messages": [{"role": "user", "content": text}]}

    await (await client.post("/v1/chat/completions?tokens=9", json=body("[stream-harness id=a tokens=3]"))).read()
    # A gateway that rewrote the tag: the id is not taken from it (it could be another stream's), nor its settings.
    await (await client.post("/v1/chat/completions?tokens=4", json=body("[stream-harness id=b tokens=x]"))).read()
    await (await client.post("/v1/chat/completions", json=body("[stream-harness id=c"))).read()
    records = await (await client.get("/__harness/streams")).json()
    assert [(r["id"], r["tokens_sent"]) for r in records[:1]] == [("a", 3)]
    assert [(r["id_channel"], r["tokens_sent"]) for r in records[1:]] == [("none", 4), ("none", 5)]
    assert (await (await client.get("/__harness/stats")).json())["tags_unparseable"] == 2


@pytest.mark.asyncio
async def test_max_tokens_caps_the_length_it_does_not_set_it(client: TestClient[Any, Any]) -> None:
    for limit in (3, 50):
        response = await client.post("/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": limit})
        assert (await response.json())["usage"]["completion_tokens"] == min(limit, DEFAULTS.tokens)


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
        ("", {"stream": True, "messages": MESSAGES, "max_tokens": -1}, "max_tokens"),
        ("", {"stream": True, "messages": MESSAGES, "max_tokens": "many"}, "max_tokens"),
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
