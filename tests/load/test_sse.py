"""The SSE decoder on crafted byte streams: split events, every line ending, comments and every field."""

from __future__ import annotations

import pytest

from harness.load.sse import SseDecoder, SseEvent

OPENAI_STREAM = (
    b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n'
    b'data: {"choices":[{"delta":{"content":"lo"}}]}\n\n'
    b"data: [DONE]\n\n"
)


def feed_all(pieces: list[bytes]) -> list[SseEvent]:
    decoder = SseDecoder()
    events: list[SseEvent] = []
    for piece in pieces:
        events += decoder.feed(piece)
    return events


def test_whole_stream_in_one_read() -> None:
    events = feed_all([OPENAI_STREAM])
    assert [event.data for event in events] == [
        '{"choices":[{"delta":{"content":"Hel"}}]}',
        '{"choices":[{"delta":{"content":"lo"}}]}',
        "[DONE]",
    ]
    assert {event.type for event in events} == {"message"}


@pytest.mark.parametrize("size", [1, 2, 3, 7, 50])
def test_events_split_across_reads_at_every_point(size: int) -> None:
    pieces = [OPENAI_STREAM[i : i + size] for i in range(0, len(OPENAI_STREAM), size)]
    assert feed_all(pieces) == feed_all([OPENAI_STREAM])


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(end: bytes) -> None:
    stream = b"event: delta" + end + b"data: a" + end + b"data: b" + end + end + b"data: c" + end + end
    expected = [SseEvent("a\nb", "delta"), SseEvent("c")]
    assert feed_all([stream]) == expected
    assert feed_all([bytes([byte]) for byte in stream]) == expected


def test_crlf_split_between_reads_is_one_line_end() -> None:
    # The CR ends one read and the LF starts the next: one line end, not a line end and a blank line.
    assert feed_all([b"data: a\r", b"\ndata: b\r", b"\n\r\n"]) == [SseEvent("a\nb")]


def test_cr_alone_then_blank_line() -> None:
    assert feed_all([b"data: a\r", b"\r"]) == [SseEvent("a")]


def test_comments_are_counted_not_dispatched() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b": keep-alive\n\n:another\ndata: x\n\n") == [SseEvent("x")]
    assert decoder.comments == 2


def test_retry_field_only_when_all_digits() -> None:
    decoder = SseDecoder()
    decoder.feed(b"retry: 1500\n\n")
    assert decoder.retry_ms == 1500
    decoder.feed(b"retry: 15s\nretry: -3\nretry:\n\n")
    assert decoder.retry_ms == 1500


def test_id_persists_across_events_and_ignores_nul() -> None:
    decoder = SseDecoder()
    events = decoder.feed(b"id: 7\ndata: a\n\ndata: b\n\nid: 8\x00\ndata: c\n\nid\ndata: d\n\n")
    assert [(event.data, event.last_event_id) for event in events] == [("a", "7"), ("b", "7"), ("c", "7"), ("d", "")]


def test_field_parsing_details() -> None:
    # Only one space after the colon is removed; a line without a colon is a field with an empty value;
    # unknown fields are ignored; "data" alone adds an empty line.
    events = feed_all([b"data:  two spaces\ndata\nfoo: bar\ndata:x\n\n"])
    assert events == [SseEvent(" two spaces\n\nx")]


def test_event_without_data_is_not_dispatched_and_resets_its_type() -> None:
    assert feed_all([b"event: ping\n\ndata: a\n\n"]) == [SseEvent("a", "message")]


def test_incomplete_event_at_the_end_is_discarded() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"data: a\n\ndata: half") == [SseEvent("a")]
    assert decoder.pending
    decoder.close()
    assert not decoder.pending
    assert decoder.feed(b"\n\n") == []


def test_utf8_character_split_across_reads_and_leading_bom() -> None:
    payload = "data: héllo ✓\n\n".encode()
    pieces = [b"\xef\xbb\xbf"] + [payload[i : i + 1] for i in range(len(payload))]
    assert feed_all(pieces) == [SseEvent("héllo ✓")]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert feed_all([b"data: \xff\n\n"]) == [SseEvent("\ufffd")]


def test_whole_reads_of_one_line_events_decode_as_line_by_line() -> None:
    # Many one-line events in one read take the whole-read path; the same bytes a byte at a time do not.
    stream = b"".join(b"data: %d\n\n" % index for index in range(20)) + b"id: 9\ndata: x\n\n" + b"data: y\n\n" * 10
    whole = feed_all([stream])
    assert whole == feed_all([bytes([byte]) for byte in stream])
    assert [event.data for event in whole[:3]] == ["0", "1", "2"]
    assert whole[-1] == SseEvent("y", last_event_id="9")
    assert feed_all([b"data: a\n", b"\n" + b"data: b\n\n" * 10]) == [SseEvent("a")] + [SseEvent("b")] * 10
