"""Pairing client and upstream streams: by id (per channel), by time order, or not at all (aggregate)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.analyse.attribution import attribute, pair_by_time
from harness.analyse.run_data import load_run
from tests.runfolders import CraftedRun, flat, leaving_streams


def test_time_order_takes_the_nearest_earlier_client_not_yet_paired() -> None:
    clients = np.array([0.0, 1.0, 2.0, 3.0])
    # client 1 never reached the upstream; the others did, 5 ms after they started
    upstream = np.array([3.005, 0.005, 2.005])
    assert sorted(pair_by_time(clients, upstream)) == [(0, 1), (2, 2), (3, 0)]


def test_time_order_never_pairs_a_client_that_started_later() -> None:
    assert pair_by_time(np.array([5.0]), np.array([4.0])) == []
    # two upstream streams for one client: the second finds no earlier free client
    assert pair_by_time(np.array([1.0]), np.array([1.1, 1.2])) == [(0, 0)]


def test_a_burst_of_concurrent_clients_is_paired_one_to_one() -> None:
    rng = np.random.default_rng(3)
    clients = np.sort(rng.uniform(0, 0.003, 12))
    upstream = clients + rng.uniform(0.001, 0.004, 12)
    pairs = pair_by_time(clients, upstream)
    assert len(pairs) == 12
    assert len({c for c, _ in pairs}) == len({u for _, u in pairs}) == 12
    assert all(clients[c] <= upstream[u] for c, u in pairs)


def test_basis_follows_the_channel_the_ids_arrived_by(tmp_path: Path) -> None:
    run = CraftedRun(rss={"a": flat(), "b": flat()})
    run.streams = [*leaving_streams("a", [0.01] * 4), *leaving_streams("b", [0.01] * 4, to_upstream=False)]
    data = load_run(run.write(tmp_path))
    by_id, by_time = attribute(data, "a"), attribute(data, "b")
    assert (by_id.basis, len(by_id.matched)) == ("id:header", 4)
    assert by_id.id_channels == {"header": 4}
    assert (by_time.basis, len(by_time.matched)) == ("time order", 4)
    assert by_time.id_channels == {"none": 4}
    # time order pairs each upstream stream with the client that really opened it here (they do not overlap)
    assert list(by_time.matched["stream_id"]) == sorted(s.stream_id for s in run.streams if s.target == "b")


def test_a_target_whose_upstream_saw_nothing_is_aggregate_and_says_so(tmp_path: Path) -> None:
    run = CraftedRun(rss={"quiet": flat()}, streams=leaving_streams("quiet", [0.01] * 3))
    folder = run.write(tmp_path)
    (folder / "upstream_streams.csv").write_text((folder / "upstream_streams.csv").read_text().splitlines()[0] + "\n")
    attribution = attribute(load_run(folder), "quiet")
    assert attribution.basis == "aggregate"
    assert attribution.matched.empty
    assert not attribution.own_upstream  # no records and no stats rows: nothing says it had one


def test_the_upstreams_own_id_read_back_pairs_exactly_and_the_rest_by_time(tmp_path: Path) -> None:
    streams = leaving_streams("relay", [0.01] * 6, to_upstream=False)
    folder = CraftedRun(rss={"relay": flat()}, streams=streams).write(tmp_path)
    # the first four clients read the upstream's id in the response; the last two left before any byte came
    clients = (folder / "clients.csv").read_text().splitlines()
    header, rows = clients[0], clients[1:]
    echoed = [row + (f"u-{row.split(',')[0]}" if index < 4 else "") for index, row in enumerate(rows)]
    (folder / "clients.csv").write_text("\n".join([header, *echoed]) + "\n")
    attribution = attribute(load_run(folder), "relay")
    assert attribution.basis == "id:response"
    assert len(attribution.matched) == 6
    assert (attribution.matched["up_id"] == "u-" + attribution.matched["stream_id"]).all()
