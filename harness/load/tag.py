"""The prompt tag the client puts into every AI request's prompt text: the stream's id and the upstream settings
the stream itself asks for, so a gateway that forwards nothing but the prompt still lets the fake upstream know
the stream and produce it as asked.

    [stream-harness id=s-1f2e3d4c5b6a7980 tokens=500 rate=20.0 first_token_delay=2.0]

The fake upstream parses it (``targets.upstream.tag``; a test checks the two agree). Keys other than ``id`` are
optional, named as in the query string: ``tokens``, ``token_bytes``, ``rate``, ``header_delay`` (s),
``first_token_delay`` (s).
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.errors import UsageError

__all__ = ["TAG_KEYS", "format_tag"]

TAG_KEYS = ("tokens", "token_bytes", "rate", "header_delay", "first_token_delay")


def format_tag(stream_id: str, settings: Iterable[tuple[str, str]] = ()) -> str:
    """The tag of ``stream_id`` with ``settings`` (name, value text), in the order of :data:`TAG_KEYS`."""
    given = dict(settings)
    unknown = sorted(set(given) - set(TAG_KEYS))
    if unknown:
        raise UsageError(f"upstream setting {unknown[0]!r} is not one of {', '.join(TAG_KEYS)}")
    pairs = "".join(f" {key}={given[key]}" for key in TAG_KEYS if key in given)
    return f"[stream-harness id={stream_id}{pairs}]"
