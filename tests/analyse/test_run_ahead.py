"""How far the upstream ran ahead of slow readers, from paired records."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.analyse.attribution import MATCHED_COLUMNS
from harness.analyse.run_ahead import run_ahead


def _pair(stream_id: str, behaviour: str = "stalled", **values: object) -> dict[str, object]:
    """A slow reader connected 0-10 s that read 10 tokens of 1,000 bytes; its upstream sent from 0 to 20 s."""
    row: dict[str, object] = {
        "stream_id": stream_id,
        "outcome": "left",
        "leave_when": "after_seconds",
        "behaviour": behaviour,
        "client_start": 0.0,
        "client_first_token": 0.1,
        "client_end": 10.0,
        "client_tokens": 10.0,
        "client_bytes": 10_000.0,
        "up_id": stream_id,
        "up_start": 0.0,
        "up_first_token": 0.0,
        "up_end": 20.0,
        "tokens_sent": 2_000.0,
        "bytes_sent": 2_000_000.0,
        "end_reason": "completed",
        "exact": True,
    }
    row.update(values)
    return row


def _frame(*rows: dict[str, object]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=list(MATCHED_COLUMNS))


def test_only_what_was_sent_while_the_client_was_connected_counts() -> None:
    figures = run_ahead(_frame(_pair("a")))
    assert figures is not None
    # half the upstream's life had passed when the client left: 1,000,000 bytes sent, 10,000 read
    assert figures.max_bytes == pytest.approx(990_000.0)
    assert figures.streams == 1
    assert figures.max_stream == "a"


def test_the_smaller_of_the_byte_and_token_estimates_is_kept() -> None:
    # a gateway that shrinks each event: the client read 10 tokens in 1,000 bytes (bytes alone would say more)
    shrunk = run_ahead(_frame(_pair("a", tokens_sent=20.0, client_bytes=1_000.0)))
    assert shrunk is not None
    assert shrunk.max_bytes == pytest.approx(0.0)  # 10 of 20 tokens sent by the leave, 10 read
    # a relay that merges chunks: 1 "token" read of 500,000 bytes (tokens alone would say more)
    merged = run_ahead(_frame(_pair("b", client_tokens=1.0, client_bytes=500_000.0)))
    assert merged is not None
    assert merged.max_bytes == pytest.approx(500_000.0)


def test_fast_readers_and_pairs_by_time_order_are_left_out() -> None:
    rows = (_pair("fast", behaviour="fast"), _pair("timed", exact=False), _pair("slow", behaviour="paced:1024B/s"))
    figures = run_ahead(_frame(*rows))
    assert figures is not None
    assert figures.streams == 1
    assert figures.max_stream == "slow"
    assert run_ahead(_frame(_pair("fast", behaviour="fast"))) is None


def test_a_client_that_left_before_the_first_token_was_sent_nothing_ahead() -> None:
    figures = run_ahead(_frame(_pair("a", up_first_token=12.0, client_bytes=0.0, client_tokens=0.0)))
    assert figures is not None
    assert figures.max_bytes == 0.0


def test_records_without_bytes_give_no_figure() -> None:
    assert run_ahead(_frame(_pair("a", bytes_sent=float("nan")))) is None
    assert run_ahead(_frame()) is None


def test_the_run_ahead_of_the_streams_open_at_a_moment_is_summed() -> None:
    rows = (_pair("a"), _pair("b", client_start=5.0, client_end=15.0), _pair("gone", client_end=4.0))
    figures = run_ahead(_frame(*rows), at=6.0)
    assert figures is not None
    assert figures.at_peak_streams == 2  # "gone" had left by then
    assert figures.at_peak_bytes == pytest.approx(990_000.0 + (1_500_000.0 - 10_000.0))
    assert run_ahead(_frame(*rows)).at_peak_bytes is None  # type: ignore[union-attr]
    nobody = run_ahead(_frame(*rows), at=30.0)  # a moment with none of them connected: no bound at all
    assert nobody is not None
    assert nobody.at_peak_bytes is None
