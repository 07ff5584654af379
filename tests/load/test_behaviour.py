"""Behaviour: bad values are refused with the value named; labels say how the stream was read and left."""

from __future__ import annotations

import pytest

from harness.errors import UsageError
from harness.load.behaviour import Behaviour
from harness.load.pacing import Pace


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"read": "slow"}, "'slow'"),
        ({"leave": "later"}, "'later'"),
        ({"leave_how": "gently"}, "'gently'"),
        ({"leave": "after_tokens"}, "leave_after_tokens >= 1, but got 0"),
        ({"leave": "after_tokens", "leave_after_tokens": 2, "read": "stalled"}, "stalled"),
        ({"leave": "after_seconds"}, "leave_after_s > 0, but got 0.0"),
        ({"read": "paced", "pace": "fast"}, "'fast'"),
        ({"api": "openai"}, "Behaviour.api must be one of openai-chat, .*, but got 'openai'"),
        ({"upstream": (("colour", "red"),)}, "Behaviour.upstream names 'colour'"),
    ],
)
def test_bad_behaviours_name_the_value(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Behaviour(**kwargs)  # type: ignore[arg-type]


def test_labels() -> None:
    assert Behaviour().label() == "fast"
    assert Behaviour(read="paced").label(Pace.parse("1KiB/s")) == "paced:1024B/s"
    leave = Behaviour(leave="after_tokens", leave_after_tokens=5)
    assert leave.label() == "fast+leave_after_tokens:5:reset"
    assert Behaviour(read="stalled", leave="after_seconds", leave_after_s=1.5, leave_how="close").label() == (
        "stalled+leave_after_seconds:1.5s:close"
    )
