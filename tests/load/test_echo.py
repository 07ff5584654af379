"""The upstream's own id read back from the response, through a relay that forwards nothing, and from a stalled
reader's socket without consuming it."""

from __future__ import annotations

import json
import time
import urllib.request

from harness.load.echo import echoed_id
from harness.load.stream_client import StreamConnection, split_url
from tests.support import Stack


def test_the_id_is_found_in_raw_or_decoded_bytes() -> None:
    assert echoed_id(b'data: {"id":"chatcmpl-anon-0123456789abcdef","object"') == "anon-0123456789abcdef"
    assert echoed_id(b"data: nothing here") == ""


def _records(stack: Stack) -> dict[str, dict[str, object]]:
    with urllib.request.urlopen(stack.url["upstream"] + "/__harness/streams", timeout=5) as response:
        return {str(record["id"]): record for record in json.load(response)}


def test_a_stalled_reader_finds_the_upstreams_id_without_reading(stack: Stack) -> None:
    host, port, _ = split_url(stack.url["lazy"])
    body = json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()
    connection = StreamConnection(host, port, rcvbuf_bytes=4096)
    try:
        connection.send_request("POST", "/v1/chat/completions", {"Content-Type": "application/json"}, body)
        assert connection.read_head(timeout_s=10).status == 200
        start = b""
        for _ in range(50):  # the first event may follow the headers by a moment
            start = connection.unread_start()
            if echoed_id(start):
                break
            time.sleep(0.1)
        upstream_id = echoed_id(start)
        assert upstream_id.startswith("anon-")  # no id was sent: the upstream made this one up
        assert connection.bytes_received == 0  # peeked, not read
        assert _records(stack)[upstream_id]["id_channel"] == "none"
    finally:
        connection.close(reset=True)
