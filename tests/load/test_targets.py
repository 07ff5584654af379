"""Targets: the --target-url syntax, its errors, and round-robin assignment."""

from __future__ import annotations

import pytest

from harness.errors import UsageError
from harness.load.targets import Target, format_targets, parse_targets, targets_of_user


def test_parse_and_format_round_trip() -> None:
    text = "mine=http://127.0.0.1:8080/base,theirs=http://[::1]:9000"
    targets = parse_targets(text)
    assert [(t.name, t.host, t.port, t.base_path) for t in targets] == [
        ("mine", "127.0.0.1", 8080, "/base"),
        ("theirs", "::1", 9000, ""),
    ]
    assert format_targets(targets) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("http://127.0.0.1:1", "NAME=http://HOST:PORT"),
        ("", "NAME=http://HOST:PORT"),
        ("a=http://127.0.0.1:1,a=http://127.0.0.1:2", "twice"),
        ("a b=http://127.0.0.1:1", "'a b'"),
        ("a=https://127.0.0.1:1", "URL"),
    ],
)
def test_bad_targets_name_the_value(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_targets(text)


def test_every_user_streams_to_every_target_each_first_in_turn() -> None:
    targets = (Target("a", "http://127.0.0.1:1"), Target("b", "http://127.0.0.1:2"))
    rounds = [[t.name for t in targets_of_user(targets, index)] for index in range(3)]
    assert rounds == [["a", "b"], ["b", "a"], ["a", "b"]]  # every user streams to every target, in turns first
