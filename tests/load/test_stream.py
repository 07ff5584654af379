"""One stream (harness.load.stream) against the real bundled stack.

Locust (and so gevent's monkey patching) stays out of pytest: each test runs its streams in a Python subprocess
that imports harness.load.stream and prints one JSON object per stream (its record and its Locust stats).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.runfolder import CLIENT_COLUMNS
from tests.support import Stack, run_python

SCRIPT = r"""
from gevent import monkey
monkey.patch_all()  # as Locust does: the stream reads through harness.load.cooperative
import json, sys
import gevent
from gevent.server import StreamServer
from harness.load.pacing import Pace
from harness.load.behaviour import Behaviour
from harness.load.stream import Stream
from harness.load.stream_settings import StreamSettings
from harness.load.targets import Target

def truncating_server(sock, address):
    sock.recv(65536)
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"1a\r\ndata: {\"content\": \"a\"}\n\n\r\n")
    sock.close()  # no final chunk: a truncated body

def unterminated_server(sock, address):
    sock.recv(65536)
    event = b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                 + b"%x\r\n" % len(event) + event + b"\r\n0\r\n\r\n")
    sock.close()  # a whole HTTP body, but no data: [DONE]: a truncated stream

server = StreamServer(("127.0.0.1", 0), truncating_server)
server.start()
unterminated = StreamServer(("127.0.0.1", 0), unterminated_server)
unterminated.start()
config = json.loads(sys.argv[1])
urls = dict(config["urls"], truncating=f"http://127.0.0.1:{server.server_port}",
            unterminated=f"http://127.0.0.1:{unterminated.server_port}")

def run(case):
    stats = []
    fire = lambda **kw: stats.append({"name": kw["name"], "ms": kw["response_time"],
                                      "length": kw["response_length"], "failed": kw["exception"] is not None})
    behaviour = Behaviour(**{k: (tuple(map(tuple, v)) if k == "upstream" else v) for k, v in case["behaviour"].items()})
    settings = StreamSettings(Target(case["target"], urls[case["target"]]), Pace.parse(case.get("pace", "1KiB/s")),
                              case.get("rcvbuf", 4096), case.get("api", "openai-chat"), "local",
                              upstream=tuple(map(tuple, case.get("settings_upstream", []))))
    record = Stream(behaviour, settings, fire).run()
    return {"record": record.row(), "stats": stats}

jobs = [gevent.spawn(run, case) for case in config["cases"]]
gevent.joinall(jobs, timeout=60)
for job in jobs:
    print(json.dumps(job.value if job.successful() else {"error": repr(job.exception)}))
"""


def run_streams(urls: dict[str, str], cases: list[dict[str, Any]], timeout_s: float = 90) -> list[dict[str, Any]]:
    lines = run_python(SCRIPT, json.dumps({"urls": urls, "cases": cases}), timeout_s=timeout_s)
    results = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(results) == len(cases), lines
    for result in results:
        assert "error" not in result, result
    return results


def upstream_records(stack: Stack) -> dict[str, dict[str, Any]]:
    return {record["id"]: record for record in stack.get_json("upstream", "/__harness/streams")}


def stat(result: dict[str, Any], suffix: str) -> list[dict[str, Any]]:
    return [entry for entry in result["stats"] if entry["name"].endswith(f" {suffix}")]


@pytest.mark.slow
def test_whole_streams_through_every_target(stack: Stack) -> None:
    cases = [
        {"target": name, "behaviour": {"upstream": [["tokens", "30"], ["rate", "0"]]}, "api": api}
        for name in ("upstream", "eager", "lazy", "bounded")
        for api in ("openai-chat", "chunked")
    ]
    results = run_streams(stack.url, cases)
    seen = upstream_records(stack)
    for case, result in zip(cases, results, strict=True):
        record = result["record"]
        assert tuple(record) == CLIENT_COLUMNS
        assert record["outcome"] == "completed", record
        if case["api"] == "openai-chat":
            assert record["tokens"] == 30, record
        else:  # a chunk is a token, but a relay may merge chunks: the bytes are exact
            assert 1 <= record["tokens"] <= 30, record
            assert record["bytes"] == 30 * 64, record
        assert record["target"] == case["target"]
        # The id the client chose is the id the upstream saw (header or body field, through the relays).
        assert record["stream_id"].startswith("s-")
        assert seen[record["stream_id"]]["end_reason"] == "completed"
        assert record["start"] <= record["first_byte"] <= record["first_token"] <= record["end"]
        assert [entry["name"] for entry in result["stats"] if not entry["name"].startswith(f"{case['target']} ")] == []
        (whole,) = stat(result, "stream")
        assert whole["length"] == record["bytes"] > 0
        assert not whole["failed"]
        assert len(result["stats"]) == 1  # one Locust request entry per stream (contract 7)
        # A relay may merge every chunk into one: a one-token stream has no gap.
        assert (record["max_token_gap"] is None) == (record["tokens"] < 2)
    assert len({result["record"]["stream_id"] for result in results}) == len(cases)


@pytest.mark.slow
def test_leaving_on_purpose(stack: Stack) -> None:
    cases = [
        {"target": "lazy", "behaviour": {"leave": "after_tokens", "leave_after_tokens": 5, "leave_how": "reset"}},
        {"target": "lazy", "behaviour": {"leave": "after_tokens", "leave_after_tokens": 5, "leave_how": "close"}},
        {"target": "upstream", "behaviour": {"read": "stalled", "leave": "after_seconds", "leave_after_s": 1.0}},
        {"target": "upstream", "behaviour": {"leave": "before_headers"}},
        {"target": "eager", "behaviour": {"leave": "after_seconds", "leave_after_s": 0.8, "leave_how": "close"}},
    ]
    results = [result["record"] for result in run_streams(stack.url, cases)]
    after_reset, after_close, stalled, before_headers, after_seconds = results
    for record in results:
        assert record["outcome"] == "left", record
        assert record["error"] == ""
    assert (after_reset["leave_when"], after_reset["leave_how"]) == ("after_tokens", "reset")
    assert (after_close["leave_when"], after_close["leave_how"]) == ("after_tokens", "close")
    assert after_reset["tokens"] >= 5
    assert after_close["tokens"] >= 5
    assert stalled["tokens"] == 0
    assert stalled["first_byte"] != ""
    assert stalled["end"] - stalled["start"] == pytest.approx(1.0, abs=0.3)
    assert after_seconds["end"] - after_seconds["start"] == pytest.approx(0.8, abs=0.3)
    assert after_seconds["leave_when"] == "after_seconds"
    assert 0 < after_seconds["tokens"] < 200
    assert before_headers["leave_when"] == "before_headers"
    assert before_headers["first_byte"] is None
    assert before_headers["status"] == 0
    # The upstream saw the streams that reached it end because the client left, not complete.
    for record in (after_reset, after_close, stalled):
        wait_for_end(stack, record["stream_id"])
    seen = upstream_records(stack)
    assert seen[stalled["stream_id"]]["end_reason"] == "peer_closed"


def wait_for_end(stack: Stack, stream_id: str, timeout_s: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = upstream_records(stack).get(stream_id)
        if record is not None and record["end_reason"] is not None:
            return
        time.sleep(0.1)
    raise AssertionError(f"upstream stream {stream_id} did not end within {timeout_s} s")


@pytest.mark.slow
def test_paced_readers_read_at_the_pace_asked_for(stack: Stack) -> None:
    # The upstream produces far faster than these readers read (rate 0 = as fast as they take it).
    fast_upstream = [["rate", "0"], ["tokens", "100000"], ["token_bytes", "64"]]
    cases = [
        {
            "target": "lazy",
            "behaviour": {
                "read": "paced",
                "pace": "4KiB/s",
                "leave": "after_seconds",
                "leave_after_s": 3.0,
                "upstream": fast_upstream,
            },
        },
        {
            "target": "upstream",
            "behaviour": {
                "read": "paced",
                "pace": "5tok/s",
                "leave": "after_seconds",
                "leave_after_s": 3.0,
                "upstream": fast_upstream,
            },
        },
        {
            "target": "bounded",
            "behaviour": {"read": "paced", "leave": "after_seconds", "leave_after_s": 3.0, "upstream": fast_upstream},
            "pace": "2KiB/s",
        },
    ]
    by_bytes, by_tokens, default_pace = (result["record"] for result in run_streams(stack.url, cases))
    for record, expected in ((by_bytes, 4096), (default_pace, 2048)):
        seconds = record["end"] - record["first_byte"]
        # One bucket (a quarter second of pace) may be read at once at the start.
        assert expected * seconds * 0.8 <= record["bytes"] <= expected * (seconds + 0.25) * 1.1, record
    assert by_tokens["behaviour"] == "paced:5tok/s+leave_after_seconds:3s:reset"
    assert default_pace["behaviour"].startswith("paced:2048B/s")
    tokens_seconds = by_tokens["end"] - by_tokens["first_token"]
    assert 5 * tokens_seconds * 0.8 <= by_tokens["tokens"] <= 5 * tokens_seconds + 2, by_tokens


@pytest.mark.slow
def test_failures_are_reported_as_failures(stack: Stack) -> None:
    cases = [
        {"target": "upstream", "behaviour": {"upstream": [["tokens", "-1"]]}},
        {"target": "truncating", "behaviour": {}},
        {"target": "closed", "behaviour": {}},
    ]
    urls = {**stack.url, "closed": "http://127.0.0.1:1"}  # nothing listens on port 1
    http_error, truncated, refused = run_streams(urls, cases)
    assert http_error["record"]["outcome"] == "http_error"
    assert http_error["record"]["status"] == 400
    assert truncated["record"]["outcome"] == "broken"
    assert truncated["record"]["tokens"] == 1
    assert refused["record"]["outcome"] == "connect_error"
    for result in (http_error, truncated, refused):
        (whole,) = stat(result, "stream")
        assert whole["failed"], result
        assert result["record"]["error"], result


@pytest.mark.slow
def test_upstream_settings_travel_in_the_query_and_the_behaviour_wins(stack: Stack) -> None:
    # The plugin sends the stack's upstream flags with every request (so web UI edits apply to the next run).
    plugin_settings = [["tokens", "7"], ["rate", "0"]]
    cases = [
        {"target": "lazy", "behaviour": {}, "settings_upstream": plugin_settings},
        {"target": "lazy", "behaviour": {"upstream": [["tokens", "9"]]}, "settings_upstream": plugin_settings},
    ]
    from_settings, from_behaviour = (result["record"] for result in run_streams(stack.url, cases))
    assert (from_settings["outcome"], from_settings["tokens"]) == ("completed", 7)
    assert (from_behaviour["outcome"], from_behaviour["tokens"]) == ("completed", 9)


@pytest.mark.slow
def test_a_body_that_ends_without_its_terminator_is_truncated(stack: Stack) -> None:
    (result,) = run_streams(stack.url, [{"target": "unterminated", "behaviour": {}}])
    record = result["record"]
    assert (record["outcome"], record["tokens"]) == ("truncated", 1), record
    assert record["error"] == "the body ended without data: [DONE]"
    (whole,) = stat(result, "stream")
    assert whole["failed"]


@pytest.mark.slow
def test_first_token_after_a_silent_upstream_is_the_first_content_for_every_api(stack: Stack) -> None:
    # 2 s between the headers and the first token: TTFT is about 2 s, TTFB near 0, directly and through a relay.
    silent = [["first_token_delay", "2"], ["tokens", "5"], ["rate", "0"]]
    apis = ("openai-chat", "openai-responses", "anthropic", "chunked")
    cases = [
        {"target": target, "api": api, "behaviour": {"upstream": silent}}
        for target in ("upstream", "lazy")
        for api in apis
    ]
    results = run_streams(stack.url, cases)
    seen = upstream_records(stack)
    for case, result in zip(cases, results, strict=True):
        record = result["record"]
        assert record["outcome"] == "completed", (case, record)
        ttfb, ttft = record["first_byte"] - record["start"], record["first_token"] - record["start"]
        assert ttfb < 1.0, (case, ttfb)
        assert 1.9 <= ttft < 3.5, (case, ttft)
        if case["api"] != "chunked":  # a relay may merge chunks; the AI APIs count content deltas exactly
            assert record["tokens"] == 5, (case, record)
            upstream = seen[record["stream_id"]]
            assert (upstream["api"], upstream["id_channel"]) == (case["api"], "prompt")
