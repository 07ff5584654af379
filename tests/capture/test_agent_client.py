"""AgentClient and AgentFeed against a real ``harness agent`` process sampling a real relay of the bundled stack."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from harness.capture.agent_client import AgentClient, AgentFeed
from harness.errors import UsageError
from harness.runfolder import RunFolder
from tests.support import Stack, agent_running, free_port, wait_until

ROOT = Path(__file__).parents[2]


def test_client_pages_through_rows_with_the_cursor(stack: Stack, tmp_path: Path) -> None:
    with agent_running(stack, "lazy", tmp_path / "agent") as agent:
        url = str(agent.url)
        client = AgentClient(url, timeout_s=5)
        assert wait_until(lambda: len(client.samples().tables.get("samples", [])) >= 3, timeout_s=10)
        first = client.samples()
        assert first.cursor is not None
        assert first.run is not None
        assert first.run.startswith("agent-")
        assert first.round_trip_s >= 0
        assert abs(first.clock_offset_s) <= first.round_trip_s / 2 + 0.001  # one host, one clock
        time.sleep(0.35)
        second = client.samples(cursor=first.cursor)
        assert second.cursor is not None
        assert second.cursor > first.cursor
        assert second.tables["samples"], "three ticks at 100 ms give new rows"
        assert min(row["t"] for row in second.tables["samples"]) > max(row["t"] for row in first.tables["samples"])
        third = client.samples(cursor=second.cursor)
        seen = max(row["t"] for row in second.tables["samples"])
        assert all(row["t"] > seen for row in third.tables["samples"]), "a row served twice"
        assert client.meta()["agent"]["pid"] == stack.children["lazy"].pid


def test_feed_writes_the_agents_rows_under_the_masters_name(stack: Stack, tmp_path: Path, folder: RunFolder) -> None:
    with agent_running(stack, "lazy", tmp_path / "agent", as_name="server") as agent:
        url = str(agent.url)
        feed = AgentFeed(AgentClient(url), "lazy-remote", folder)
        assert wait_until(lambda: feed.poll() > 0 and feed.rows.get("connections", 0) > 0, timeout_s=10)
        time.sleep(0.5)
        feed.poll()
    samples = pd.read_csv(folder.file("samples"))
    connections = pd.read_csv(folder.file("connections"))
    stats = pd.read_csv(folder.file("stats"))
    assert set(samples["target"]) == {"lazy-remote"}
    assert set(connections["target"]) == {"lazy-remote"}
    assert set(stats["target"]) == {"lazy-remote"}
    assert (samples["pid"] == stack.children["lazy"].pid).all()
    assert samples["t"].is_unique, "the cursor must not fetch a row twice"
    assert samples["t"].is_monotonic_increasing
    assert len(samples) == feed.rows["samples"]
    assert (stats["ok"] == 1).all()
    events = pd.read_csv(folder.file("events"))
    assert list(events["kind"]) == ["agent_connected"]
    assert "clock is" in events["detail"].iloc[0]
    summary = feed.summary()
    assert summary["status"] == "complete"
    assert summary["agent_targets"] == ["server"]
    assert summary["agent"]["connections_method"] in ("netlink", "ss", "psutil")
    assert summary["clock_round_trip_s"] is not None


def test_an_unreachable_agent_gives_one_event_and_recovery_gives_another(
    stack: Stack, tmp_path: Path, folder: RunFolder
) -> None:
    port = free_port()
    feed = AgentFeed(AgentClient(f"http://127.0.0.1:{port}", timeout_s=1), "far", folder)
    assert feed.poll() == 0
    assert feed.poll() == 0
    assert feed.status() == "missing"
    with agent_running(stack, "lazy", tmp_path / "agent", port=port):
        assert wait_until(lambda: feed.poll() > 0, timeout_s=10)
    feed.poll()  # the agent has gone again
    events = pd.read_csv(folder.file("events"))
    kinds = list(events["kind"])
    assert kinds == ["agent_unreachable", "agent_recovered", "agent_connected", "agent_unreachable"]
    assert f"127.0.0.1:{port}" in events["detail"].iloc[0]
    assert feed.status() == "partial"
    assert len(feed.outages) == 2
    assert feed.outages[0]["to"] is not None
    assert feed.outages[1]["to"] is None


def test_client_rejects_a_bad_url() -> None:
    with pytest.raises(UsageError, match="agent URL must look like http://HOST:PORT, but got 'localhost:9'"):
        AgentClient("localhost:9")
