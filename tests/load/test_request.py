"""The request of each API: its route, its body (which the fake upstream accepts as that API's), the tag in the
prompt, the id in the header and the user field, the stream's own settings; and the templates' {tag}."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.launch.targets_spec import RequestSpec
from harness.load.apis import API_NAMES
from harness.load.behaviour import Behaviour
from harness.load.pacing import Pace
from harness.load.request import MAX_TOKENS, build_request
from harness.load.stream_settings import StreamSettings
from harness.load.targets import Target
from targets.upstream.chat import CHAT
from targets.upstream.messages import MESSAGES
from targets.upstream.responses import RESPONSES
from targets.upstream.tag import find_tag

UPSTREAM_PARSERS: dict[str, Any] = {
    "openai-chat": CHAT,
    "sse": CHAT,
    "openai-responses": RESPONSES,
    "anthropic": MESSAGES,
}
ROUTES = {
    "openai-chat": "/base/v1/chat/completions",
    "sse": "/base/v1/chat/completions",
    "openai-responses": "/base/v1/responses",
    "anthropic": "/base/v1/messages",
}


def settings(api: Any, request: RequestSpec | None = None) -> StreamSettings:
    target = Target("t", "http://127.0.0.1:9/base")
    return StreamSettings(target, Pace.parse("1KiB/s"), 4096, api, "local", request=request)


@pytest.mark.parametrize("api", [name for name in API_NAMES if name != "chunked"])
def test_ai_requests_carry_the_tag_where_the_upstream_looks_for_it(api: Any) -> None:
    behaviour = Behaviour(upstream=(("tokens", "40"), ("first_token_delay", "2")))
    request = build_request("s-abc", behaviour, settings(api))
    assert request.method == "POST"
    assert request.path == ROUTES[api] + "?tokens=40&first_token_delay=2"
    assert request.headers["X-Request-ID"] == "s-abc"
    parsed = UPSTREAM_PARSERS[api].parse(json.loads(request.body))
    assert parsed.stream
    found = find_tag(parsed.texts)
    assert found.tag is not None
    assert (found.tag.stream_id, found.tag.settings) == ("s-abc", {"tokens": 40, "first_token_delay": 2.0})
    assert parsed.user == "s-abc"
    if api == "anthropic":
        assert parsed.max_tokens == 40
        assert request.headers["anthropic-version"]


def test_a_stream_without_its_own_settings_asks_for_no_limit_and_the_phase_decides() -> None:
    request = build_request("s-1", Behaviour(), settings("anthropic"))
    assert json.loads(request.body)["max_tokens"] == MAX_TOKENS
    assert "?" not in request.path


def test_chunked_is_a_get_with_the_id_in_the_query() -> None:
    request = build_request("s-1", Behaviour(upstream=(("rate", "5"),)), settings("chunked"))
    assert (request.method, request.path, request.body) == ("GET", "/base/v1/stream?user=s-1&rate=5", b"")


def test_a_template_gets_the_tag_and_the_stream_s_limit() -> None:
    spec = RequestSpec("POST", "/gen", '{"prompt": "hello {tag}", "id": "{stream_id}", "n": {max_tokens}}')
    request = build_request("s-9", Behaviour(upstream=(("tokens", "12"),)), settings("sse", spec))
    body = json.loads(request.body)
    assert body == {"prompt": "hello [stream-harness id=s-9 tokens=12]", "id": "s-9", "n": 12}
    assert request.path == "/base/gen?tokens=12"
