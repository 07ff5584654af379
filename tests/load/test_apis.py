"""API names: the five there are, and one line naming a wrong one."""

from __future__ import annotations

import pytest

from harness.errors import UsageError
from harness.load.apis import API_NAMES, DEFAULT_API, TERMINATORS, parse_api


def test_names_and_their_terminators() -> None:
    assert API_NAMES == ("openai-chat", "openai-responses", "anthropic", "sse", "chunked")
    assert DEFAULT_API == "openai-chat"
    assert set(TERMINATORS) == set(API_NAMES)
    assert [parse_api(name) for name in API_NAMES] == list(API_NAMES)


def test_an_unknown_api_names_the_value_and_the_choices() -> None:
    with pytest.raises(UsageError) as caught:
        parse_api("openai", what="--stream-api")
    message = str(caught.value)
    assert "\n" not in message
    assert message == (
        "--stream-api must be one of openai-chat, openai-responses, anthropic, sse, chunked, but got 'openai'"
    )
