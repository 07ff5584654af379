"""The prompt tag the client writes, and that the fake upstream reads back exactly what it was given."""

from __future__ import annotations

import pytest

from harness.errors import UsageError
from harness.load.tag import TAG_KEYS, format_tag
from targets.upstream.settings import KEYS
from targets.upstream.tag import parse_tag


def test_client_and_upstream_agree_on_the_tag() -> None:
    assert TAG_KEYS == KEYS
    settings = [("rate", "20.0"), ("tokens", "500"), ("first_token_delay", "2"), ("header_delay", "0.5")]
    text = format_tag("s-0123456789abcdef", settings)
    assert text == "[stream-harness id=s-0123456789abcdef tokens=500 rate=20.0 header_delay=0.5 first_token_delay=2]"
    tag = parse_tag(f"stream-harness {text}")
    assert tag is not None
    assert tag.stream_id == "s-0123456789abcdef"
    assert tag.settings == {"tokens": 500, "rate": 20.0, "header_delay": 0.5, "first_token_delay": 2.0}
    bare = parse_tag(format_tag("s-1"))
    assert bare is not None
    assert (bare.stream_id, bare.settings) == ("s-1", {})


def test_an_unknown_setting_is_refused_naming_it() -> None:
    with pytest.raises(UsageError, match="'colour'"):
        format_tag("s-1", [("colour", "red")])
