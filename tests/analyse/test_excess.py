"""The excess of open upstream streams over connected clients: exact from records, stepwise from stats."""

from __future__ import annotations

import numpy as np
import pytest

from harness.analyse.excess import Excess


def _excess(upstream: list[tuple[float, float]], clients: list[tuple[float, float]]) -> Excess:
    from harness.analyse.memory import open_at

    up = np.array(upstream, dtype=float).reshape(-1, 2)
    cl = np.array(clients, dtype=float).reshape(-1, 2)
    t = np.unique(np.concatenate([up.ravel(), cl.ravel()]))
    t = t[~np.isnan(t)]
    return Excess(t, open_at(up[:, 0], up[:, 1], t), open_at(cl[:, 0], cl[:, 1], t), "records")


def test_streams_that_close_with_their_clients_have_no_excess() -> None:
    figures = _excess([(0.1, 5.0), (1.1, 6.0)], [(0.0, 5.0), (1.0, 6.0)]).figures(0.0, 10.0)
    assert (figures.peak, figures.seconds_above_zero, figures.stream_seconds, figures.at_end) == (0, 0.0, 0.0, 0)


def test_a_stream_held_two_seconds_after_its_client_left() -> None:
    figures = _excess([(0.1, 7.0), (1.1, 6.0)], [(0.0, 5.0), (1.0, 6.0)]).figures(0.0, 10.0)
    assert figures.peak == 1
    assert figures.seconds_above_zero == pytest.approx(2.0)  # 5-7 s, whichever stream is the orphan
    assert figures.longest_s == pytest.approx(2.0)
    assert figures.stream_seconds == pytest.approx(2.0)
    assert figures.at_end == 0


def test_never_closed_streams_count_to_the_window_end() -> None:
    series = _excess([(0.1, np.nan), (0.2, np.nan)], [(0.0, 1.0), (0.1, 2.0)])
    figures = series.figures(0.0, 10.0)
    assert (figures.peak, figures.at_end) == (2, 2)
    assert figures.stream_seconds == pytest.approx(9.0 + 8.0)
    assert figures.longest_s == pytest.approx(9.0)
    within = series.figures(1.5, 3.0)
    assert within.stream_seconds == pytest.approx(0.5 * 1 + 1.0 * 2)
