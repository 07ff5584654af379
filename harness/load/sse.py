"""An incremental Server-Sent Events decoder, as the WHATWG HTML standard specifies the event stream format.

Bytes go in as they arrive (an event, a line or a UTF-8 character may be split across reads); whole events come
out. Lines end with CRLF, LF or CR (a CR at the end of one read and an LF at the start of the next are one line
end). Lines starting with ``:`` are comments. Fields: ``data`` (lines joined with LF), ``event`` (the type,
``message`` by default), ``id`` (the last event id, kept across events; ignored if it holds NUL) and ``retry``
(reconnection time in ms, only if all ASCII digits); others are ignored. An event is dispatched at a blank line,
and only if it had data. Whatever is pending when the stream ends is discarded, as the standard says.

It works on whole reads of bytes: one ``split`` per read (a read of whole one-line events is then decoded without a
Python step per event, else a loop over its lines), and no UTF-8 decoding until an
event's data is wanted as text (every byte the format gives meaning to is ASCII, and UTF-8 never hides one inside a
character, so splitting bytes is splitting text; a character split across reads is whole by the time its line is).

Spec: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter

__all__ = ["RawEvent", "SseDecoder", "SseEvent"]

_BOM = b"\xef\xbb\xbf"

_DATA = b"data: "
_after_data = itemgetter(slice(len(_DATA), None))
_WHOLE_READ_LINES = 8
"""Below this many lines in a read the loop is cheaper than setting up map and zip."""

RawEvent = tuple[bytes, bytes, str]
"""(event type, b"" for the default ``message``; data, UTF-8 bytes; the last event id at dispatch)."""


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event."""

    data: str
    type: str = "message"
    last_event_id: str = ""


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


class SseDecoder:
    """Feed it bytes with :meth:`feed` (events as text) or :meth:`feed_raw` (events as bytes, cheaper)."""

    __slots__ = ("_data", "_event_type", "_skip_lf", "_started", "_tail", "comments", "last_event_id", "retry_ms")

    def __init__(self) -> None:
        self._tail = b""
        """The start of a line whose end has not arrived."""
        self._skip_lf = False
        """The last read ended with CR: an LF at the start of the next one ends nothing more."""
        self._started = False
        self._data: list[bytes] = []
        self._event_type = b""
        self.last_event_id = ""
        self.retry_ms: int | None = None
        """The last valid ``retry:`` value, in milliseconds."""
        self.comments = 0
        """Comment lines seen (servers send them as keep-alives)."""

    @property
    def pending(self) -> bool:
        """True when part of an event (a line or fields without their blank line) is waiting for more bytes."""
        return bool(self._tail or self._data or self._event_type)

    def feed(self, data: bytes) -> list[SseEvent]:
        """Decode ``data`` and return the events it completed, in order."""
        return [
            SseEvent(_text(body), _text(kind) if kind else "message", last_id)
            for kind, body, last_id in self.feed_raw(data)
        ]

    def feed_raw(self, data: bytes) -> list[RawEvent]:
        """Decode ``data`` and return the events it completed, in order, as :data:`RawEvent` tuples."""
        if not self._started:
            data = self._tail + data
            self._tail = b""
            if len(data) < len(_BOM) and _BOM.startswith(data):
                self._tail = data  # maybe the start of a BOM: wait for the rest
                return []
            self._started = True
            if data.startswith(_BOM):  # one leading BOM is skipped
                data = data[len(_BOM) :]
        if self._skip_lf and data:
            if data[:1] == b"\n":
                data = data[1:]
            self._skip_lf = False
        if b"\r" in data:
            self._skip_lf = data.endswith(b"\r")
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in data:
            self._tail += data
            return []
        lines = data.split(b"\n")
        if self._tail:
            lines[0] = self._tail + lines[0]
        self._tail = lines.pop()  # b"" when the read ended with a line end
        values = self._data
        if len(lines) >= _WHOLE_READ_LINES and not values and not self._event_type and len(lines) % 2 == 0:
            data_lines = lines[::2]
            if not any(lines[1::2]) and all(map(bytes.startswith, data_lines, repeat(_DATA))):
                # Every event is one "data: ..." line and its blank line (the usual stream): the whole read in C
                # (split, map, zip), no Python step per event.
                return list(zip(repeat(b""), map(_after_data, data_lines), repeat(self.last_event_id)))
        events: list[RawEvent] = []
        for line in lines:
            if line[:5] == b"data:":
                values.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line:
                self._field(line)
            elif values:
                events.append(
                    (self._event_type, values[0] if len(values) == 1 else b"\n".join(values), self.last_event_id)
                )
                values.clear()
                self._event_type = b""
            else:
                self._event_type = b""  # a blank line without data resets the event type
        return events

    def _field(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        if not name and colon:
            self.comments += 1
            return
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event_type = value
        elif name == b"id":
            if b"\0" not in value:
                self.last_event_id = _text(value)
        elif name == b"retry" and value.isdigit():  # bytes.isdigit is ASCII digits only
            self.retry_ms = int(value)

    def close(self) -> None:
        """The stream ended: discard whatever was pending (an incomplete event is never dispatched)."""
        self._tail = b""
        self._data.clear()
        self._event_type = b""
        self._skip_lf = False
