"""The prompt tag: a stream's id and settings, carried in the prompt text, which every AI gateway forwards.

    [stream-harness id=s-1f2e3d4c5b6a7980 tokens=500 rate=20.0 first_token_delay=2.0]

Keys other than ``id`` are optional: ``tokens``, ``token_bytes``, ``rate``, ``header_delay``, ``first_token_delay``
(the names and limits of the query string). The harness's client writes it (``harness.load.tag``; the two must
agree, and a test checks they do). A tag that is present but does not parse whole (an unknown key, a bad value,
no id, a gateway that rewrote part of it) is ignored, so it is never mistaken for another stream's, and counted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from targets.upstream.settings import KEYS, BadField, checked

__all__ = ["MARKER", "Tag", "TagResult", "find_tag"]

MARKER = "[stream-harness"
_TAG = re.compile(r"\[stream-harness((?: +[a-z_]+=[^\s\[\]]+)+) *\]")
_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@dataclass(frozen=True, slots=True)
class Tag:
    stream_id: str
    settings: dict[str, int | float]
    """Checked values by the names of ``KEYS``."""


@dataclass(frozen=True, slots=True)
class TagResult:
    tag: Tag | None
    unparseable: bool
    """A marker was seen, but no whole tag parsed."""


def parse_tag(text: str) -> Tag | None:
    """The first tag in ``text`` that parses whole, else None."""
    for match in _TAG.finditer(text):
        tag = _parsed(match.group(1))
        if tag is not None:
            return tag
    return None


def _parsed(pairs: str) -> Tag | None:
    stream_id = ""
    settings: dict[str, int | float] = {}
    for pair in pairs.split():
        key, _, value = pair.partition("=")
        if key == "id" and not stream_id and _ID.fullmatch(value):
            stream_id = value
        elif key in KEYS and key not in settings:
            try:
                settings[key] = checked(key, value)
            except BadField:
                return None
        else:
            return None
    return Tag(stream_id, settings) if stream_id else None


def find_tag(texts: Iterable[str]) -> TagResult:
    """The tag of the first text (the last user message first) that carries one."""
    seen = False
    for text in texts:
        if MARKER not in text:
            continue
        seen = True
        tag = parse_tag(text)
        if tag is not None:
            return TagResult(tag, False)
    return TagResult(None, seen)
