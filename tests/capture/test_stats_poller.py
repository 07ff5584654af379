"""The stats poller against the real stack, a closed port and a server that never answers."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from harness.capture.stats_poller import STATS_COLUMNS, StatsPoller, StatsTarget, fetch_upstream_streams
from harness.load.stream_client import StreamConnection, split_url
from harness.runfolder import UPSTREAM_STREAM_COLUMNS
from tests.support import Stack


def _poll(poller: StatsPoller, t: float = 1.0, wait_s: float = 2.0) -> dict[str, dict[str, object]]:
    rows = poller.collect(t, poller.begin(), time.monotonic() + wait_s)
    return {str(row["target"]): row for row in rows}


def test_polls_relays_and_upstream_into_one_row_each(stack: Stack) -> None:
    poller = StatsPoller(
        [StatsTarget("upstream", stack.url["upstream"], "lazy"), StatsTarget("lazy", stack.url["lazy"])]
    )
    try:
        for t in (1.0, 2.0):  # the second poll reuses the kept-alive connections
            rows = _poll(poller, t)
            assert set(rows) == {"upstream", "lazy"}
            assert (rows["upstream"]["upstream_of"], rows["lazy"]["upstream_of"]) == ("lazy", None)
            for row in rows.values():
                assert set(row) <= set(STATS_COLUMNS)
                assert row["ok"] == 1
                assert row["t"] == t
                assert isinstance(row["server_time"], float)
            assert isinstance(rows["lazy"]["open_upstream_streams"], int)
            assert isinstance(rows["upstream"]["open_streams"], int)
            assert rows["upstream"]["tags_unparseable"] == 0  # a column of its own, not in extra
            assert '"ended"' in str(rows["upstream"]["extra"]), "fields without a column go to extra as JSON"
    finally:
        poller.close()


def test_a_closed_port_is_a_gap_not_a_crash() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound but not listening: connections are refused
        poller = StatsPoller([StatsTarget("gone", f"http://127.0.0.1:{port}")], timeout_s=0.5)
        try:
            row = _poll(poller)["gone"]
        finally:
            poller.close()
    assert row["ok"] == 0
    assert row["error"] == "connection refused"
    assert "open_streams" not in row


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def test_a_silent_target_costs_the_tick_at_most_its_deadline(stack: Stack, silent_server: str) -> None:
    poller = StatsPoller([StatsTarget("silent", silent_server), StatsTarget("lazy", stack.url["lazy"])], timeout_s=1.0)
    try:
        started = time.monotonic()
        rows = _poll(poller, wait_s=0.3)
        assert time.monotonic() - started < 1.0, "collect must return at its deadline, not the request's timeout"
        assert rows["silent"]["ok"] == 0
        assert rows["silent"]["error"] == "no answer within the tick"
        assert rows["lazy"]["ok"] == 1
        again = _poll(poller, wait_s=0.1)
        assert again["silent"]["error"] == "previous request still unanswered", "a hung target is not asked twice"
        time.sleep(1.0)  # its request times out
        assert _poll(poller, wait_s=2.0)["silent"]["error"] in ("timed out", "no answer within the tick")
    finally:
        poller.close()


def test_fetches_the_upstreams_per_stream_records(stack: Stack) -> None:
    host, port, _ = split_url(stack.url["upstream"])
    stream = StreamConnection(host, port)
    stream.send_request("GET", "/v1/stream?tokens=2&rate=0", {"X-Request-ID": "poller-records"})
    assert stream.read_head().status == 200
    while stream.read() is not None:
        pass
    stream.close()
    rows = fetch_upstream_streams(stack.url["upstream"], target="lazy")
    (mine,) = [row for row in rows if row["id"] == "poller-records"]
    assert tuple(mine) == UPSTREAM_STREAM_COLUMNS
    assert mine["target"] == "lazy"  # the target whose own upstream this is
    assert mine["tokens_sent"] == 2
    assert mine["end_reason"] == "completed"


def test_fetching_records_from_a_relay_says_what_was_wrong(stack: Stack) -> None:
    with pytest.raises(OSError, match="404"):
        fetch_upstream_streams(stack.url["lazy"])
