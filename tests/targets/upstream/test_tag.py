"""The prompt tag's parser: a whole tag or nothing, wherever it sits in the prompt."""

from __future__ import annotations

import pytest

from targets.upstream.tag import find_tag, parse_tag


def test_a_whole_tag_gives_its_id_and_checked_settings() -> None:
    tag = parse_tag("Tell me a story. [stream-harness id=s-1 tokens=50 token_bytes=8 rate=2.5 first_token_delay=3]")
    assert tag is not None
    assert tag.stream_id == "s-1"
    assert tag.settings == {"tokens": 50, "token_bytes": 8, "rate": 2.5, "first_token_delay": 3.0}


@pytest.mark.parametrize(
    "text",
    [
        "[stream-harness tokens=5]",  # no id
        "[stream-harness id=s-1 tokens=-5]",  # a bad value
        "[stream-harness id=s-1 colour=red]",  # an unknown key
        "[stream-harness id=s-1 tokens=5",  # cut off
        "[stream-harness id=s-1 tokens=5 tokens=6]",  # a key twice
        "[stream-harness id=s-1 rate=fast]",
        "[Stream-Harness id=s-1]",
    ],
)
def test_a_mangled_tag_gives_nothing(text: str) -> None:
    assert parse_tag(text) is None


def test_find_tag_looks_in_order_and_says_when_a_marker_did_not_parse() -> None:
    found = find_tag(["no tag here", "[stream-harness id=a]", "[stream-harness id=b]"])
    assert found.tag is not None
    assert (found.tag.stream_id, found.unparseable) == ("a", False)
    mangled = find_tag(["[stream-harness id=a tokens=many]"])
    assert (mangled.tag, mangled.unparseable) == (None, True)
    assert find_tag(["plain prompt"]).unparseable is False
