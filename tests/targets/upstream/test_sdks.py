"""The official ``openai`` and ``anthropic`` SDKs against the fake upstream process: streaming and not, every event
parsed, the text equal to the tokens sent, the usage reported when asked, the stream known by its tag."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from harness.launch.process import ChildProcess, LaunchSpec
from targets.upstream.producer import text_of

TOKENS, TOKEN_BYTES = 6, 5
TEXT = text_of(TOKENS, TOKEN_BYTES)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    argv = [sys.executable, "-m", "targets.upstream", "--port", "0", "--tokens", str(TOKENS)]
    argv += ["--token-bytes", str(TOKEN_BYTES), "--rate", "500"]
    child = ChildProcess(LaunchSpec("upstream", argv), Path(tmp_path_factory.mktemp("sdk")) / "upstream.log")
    try:
        yield child.wait_ready(15)
    finally:
        child.stop(3.0)


def records(upstream: str) -> dict[str, dict[str, Any]]:
    import json
    import urllib.request

    with urllib.request.urlopen(upstream + "/__harness/streams", timeout=5) as response:
        return {record["id"]: record for record in json.load(response)}


def test_openai_chat_streaming_and_whole(upstream: str) -> None:
    client = openai.OpenAI(base_url=upstream + "/v1", api_key="unused", max_retries=0, timeout=10)
    prompt = [{"role": "user", "content": "hello [stream-harness id=sdk-chat tokens=4]"}]
    chunks = list(
        client.chat.completions.create(
            model="m",
            messages=prompt,
            stream=True,
            stream_options={"include_usage": True},  # type: ignore[arg-type]
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text_of(4, TOKEN_BYTES)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4
    whole = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert whole.choices[0].message.content == TEXT
    assert whole.usage is not None
    assert whole.usage.completion_tokens == TOKENS
    assert (records(upstream)["sdk-chat"]["id_channel"], records(upstream)["sdk-chat"]["api"]) == (
        "prompt",
        "openai-chat",
    )


def test_openai_responses_streaming_and_whole(upstream: str) -> None:
    client = openai.OpenAI(base_url=upstream + "/v1", api_key="unused", max_retries=0, timeout=10)
    with client.responses.stream(model="m", input="hi [stream-harness id=sdk-responses]") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == TOKENS
    assert final.output_text == TEXT
    assert final.usage is not None
    assert final.usage.output_tokens == TOKENS
    whole = client.responses.create(model="m", input="hi", max_output_tokens=2)
    assert (whole.output_text, whole.status) == (text_of(2, TOKEN_BYTES), "incomplete")
    assert records(upstream)["sdk-responses"]["api"] == "openai-responses"


def test_anthropic_messages_streaming_and_whole(upstream: str) -> None:
    client = anthropic.Anthropic(base_url=upstream, api_key="unused", max_retries=0, timeout=10)
    prompt: Any = [{"role": "user", "content": "hi [stream-harness id=sdk-anthropic]"}]
    with client.messages.stream(model="claude-x", max_tokens=100, messages=prompt) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == TEXT
    assert (final.stop_reason, final.usage.output_tokens) == ("end_turn", TOKENS)
    whole = client.messages.create(model="claude-x", max_tokens=3, messages=prompt)
    assert whole.content[0].type == "text"
    assert (whole.content[0].text, whole.stop_reason) == (text_of(3, TOKEN_BYTES), "max_tokens")
    with pytest.raises(anthropic.BadRequestError, match="max_tokens: Field required"):
        client.post("/v1/messages", cast_to=object, body={"model": "m", "messages": prompt})
    assert records(upstream)["sdk-anthropic"]["api"] == "anthropic"
