"""Token decoders of the AI APIs: content deltas are tokens, the API's own terminator ends the stream.

Each decoder takes whole reads, keeps the unfinished last line for the next read, and counts in C: one regular
expression search over the complete lines of a read finds its content deltas, another its terminator. The JSON
is never parsed: the patterns match a field and the start of its value, with or without spaces, and a field name
inside generated text cannot match (its quotes arrive escaped). A role-only chunk, an empty delta, ``ping``,
``*.created`` and the other control events match no content pattern, so they are not tokens.
"""

from __future__ import annotations

import re
from typing import ClassVar

__all__ = ["AnthropicTokens", "LineTokens", "OpenAIChatTokens", "OpenAIResponsesTokens"]


class LineTokens:
    """Counts ``content`` matches in the complete lines of an event stream; ``end`` marks its terminator."""

    __slots__ = ("_content", "_end", "_marker", "_tail", "finished")

    content: ClassVar[re.Pattern[bytes]]
    end: ClassVar[re.Pattern[bytes]]
    end_marker: ClassVar[bytes]
    """A literal every terminator's line contains: the pattern runs only from the line of its last occurrence."""

    def __init__(self) -> None:
        self._content = self.content
        self._end = self.end
        self._marker = self.end_marker
        self._tail = b""
        self.finished = False

    def feed(self, data: bytes) -> int:
        if b"\r" in data:
            # CRLF or CR line ends; a CRLF split across reads becomes an empty line, which ends nothing here.
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        cut = data.rfind(b"\n")
        if cut < 0:
            self._tail += data
            return 0
        lines = self._tail + data[:cut] if self._tail else data[:cut]
        self._tail = data[cut + 1 :]
        if not self.finished:
            at = lines.rfind(self._marker)
            # The terminator is the last event: look from the line of the marker's last occurrence on.
            if at >= 0 and self._end.search(lines, lines.rfind(b"\n", 0, at) + 1) is not None:
                self.finished = True
        return len(self._content.findall(lines))


class OpenAIChatTokens(LineTokens):
    """``openai-chat``: a chunk whose delta has non-empty ``content`` is a token; ``data: [DONE]`` ends it."""

    __slots__ = ()
    content = re.compile(rb'"content"\s*:\s*"(?!")')
    end = re.compile(rb"(?m)^data:[ \t]*\[DONE\]")
    end_marker = b"[DONE]"


class OpenAIResponsesTokens(LineTokens):
    """``openai-responses``: a ``response.output_text.delta`` event is a token; ``response.completed``,
    ``response.incomplete`` or ``response.failed`` ends it."""

    __slots__ = ()
    content = re.compile(rb'"type"\s*:\s*"response\.output_text\.delta"')
    end = re.compile(rb'"type"\s*:\s*"response\.(?:completed|incomplete|failed)"')
    end_marker = b'"response"'


class AnthropicTokens(LineTokens):
    """``anthropic``: a ``content_block_delta`` with a ``text_delta`` is a token; ``message_stop`` ends it."""

    __slots__ = ()
    content = re.compile(rb'"type"\s*:\s*"text_delta"')
    end = re.compile(rb'"type"\s*:\s*"message_stop"')
    end_marker = b"message_stop"
