"""An incremental Server-Sent Events decoder, as the WHATWG HTML standard specifies the event stream format.

Bytes go in as they arrive (an event, a line or a UTF-8 character may be split across reads); whole events come
out. Lines end with CRLF, LF or CR (a CR at the end of one read and an LF at the start of the next are one line
end). Lines starting with ``:`` are comments. Fields: ``data`` (lines joined with LF), ``event`` (the type,
``message`` by default), ``id`` (the last event id, kept across events; ignored if it holds NUL) and ``retry``
(reconnection time in ms, only if all ASCII digits); others are ignored. An event is dispatched at a blank line,
and only if it had data. Whatever is pending when the stream ends is discarded, as the standard says.

Spec: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

__all__ = ["SseDecoder", "SseEvent"]

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event."""

    data: str
    type: str = "message"
    last_event_id: str = ""


class SseDecoder:
    """Feed it bytes with ``feed``; it returns the events completed by them."""

    __slots__ = (
        "_data",
        "_decoder",
        "_event_type",
        "_has_data",
        "_partial",
        "_skip_lf",
        "_started",
        "comments",
        "last_event_id",
        "retry_ms",
    )

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""
        """The start of a line whose end has not arrived."""
        self._skip_lf = False
        """The last read ended with CR: an LF at the start of the next one ends nothing more."""
        self._started = False
        self._data: list[str] = []
        self._has_data = False
        self._event_type = ""
        self.last_event_id = ""
        self.retry_ms: int | None = None
        """The last valid ``retry:`` value, in milliseconds."""
        self.comments = 0
        """Comment lines seen (servers send them as keep-alives)."""

    @property
    def pending(self) -> bool:
        """True when part of an event (a line or fields without their blank line) is waiting for more bytes."""
        return bool(self._partial or self._has_data or self._event_type)

    def feed(self, data: bytes) -> list[SseEvent]:
        """Decode ``data`` and return the events it completed, in order."""
        text = self._decoder.decode(data)
        if not self._started and text:
            self._started = True
            if text[0] == "\ufeff":  # one leading BOM is skipped
                text = text[1:]
        if self._skip_lf and text:
            if text[0] == "\n":
                text = text[1:]
            self._skip_lf = False
        if not text:
            return []
        if "\r" in text:
            lines = _LINE_END.split(text)
            self._skip_lf = text.endswith("\r")
        else:
            lines = text.split("\n")
        lines[0] = self._partial + lines[0]
        self._partial = lines.pop()  # "" when the text ended with a line end
        events: list[SseEvent] = []
        for line in lines:
            if line:
                self._field(line)
            elif self._has_data:
                events.append(self._dispatch())
            else:
                self._event_type = ""  # a blank line without data resets the event type
        return events

    def _field(self, line: str) -> None:
        name, colon, value = line.partition(":")
        if not name and colon:
            self.comments += 1
            return
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "event":
            self._event_type = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self.retry_ms = int(value)

    def _dispatch(self) -> SseEvent:
        event = SseEvent(
            data="\n".join(self._data), type=self._event_type or "message", last_event_id=self.last_event_id
        )
        self._data = []
        self._has_data = False
        self._event_type = ""
        return event

    def close(self) -> None:
        """The stream ended: discard whatever was pending (an incomplete event is never dispatched)."""
        self._decoder.reset()
        self._partial = ""
        self._data = []
        self._has_data = False
        self._event_type = ""
        self._skip_lf = False
