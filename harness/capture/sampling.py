"""The samplers' orchestrator: one clock, one background thread, rows into the run folder as they come.

Each tick takes the time once (``t``, epoch seconds), sends the stats requests, reads the process trees and the
upstream connections while those are in flight, collects the stats until a deadline, and appends every row
(flushed) to samples.csv, connections.csv and stats.csv. Ticks are scheduled on a fixed grid; a tick that
overruns skips the grid points it missed instead of bunching up.

On ``stop`` meta.json's ``sampler`` gains ``ticks``, ``overruns`` and ``busy_percent_of_one_core``: the CPU time
of the ticking thread during its ticks (under gevent, that includes whatever other greenlets ran while a tick
waited for the stats, so read it as an upper bound there).

Targets under the tracemalloc probe (``SampledTarget.probe``): each tick also reads the probe's traced memory
(capture/traced_memory.py); ``snapshot(label)`` and ``phase(name, snapshot_label=...)`` take tracemalloc
snapshots in the background, and ``stop()`` finishes them and their growth analysis (capture/snapshots.py).

Targets on another host (``SampledTarget.agent_url``): a ``harness agent`` samples them there; a poller thread
(not the ticks: an agent far away must not hold them) fetches its new rows every ``agent_poll_s`` and appends
them under the master's name for the target (capture/agent_client.py's ``AgentPoller``). The rows keep the
agent's clock; meta.json ``agents.<target>`` records the measured offset between the clocks, the outages, and
whether that target's server figures are ``complete``, ``partial`` or ``missing``.

Runs in plain Python and in the gevent-patched Locust process, where the thread is a greenlet: every step is
short or cooperative (urllib, the netlink socket and subprocess yield to the hub), and nothing waits without a
deadline.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from harness.capture.agent_client import AgentClient, AgentFeed, AgentPoller
from harness.capture.connections import CONNECTION_COLUMNS, ConnectionCounter
from harness.capture.probe_client import ProbeClient
from harness.capture.process_sampler import SAMPLE_COLUMNS, ProcessSampler
from harness.capture.snapshots import SnapshotRound, Snapshots
from harness.capture.stats_poller import STATS_COLUMNS, StatsPoller, StatsTarget, fetch_upstream_streams
from harness.capture.traced_memory import Sent, TracedPoller
from harness.runfolder import RunFolder, owner_of

__all__ = ["SampledTarget", "Sampler", "SamplerConfig"]


@dataclass(frozen=True, slots=True)
class SampledTarget:
    name: str
    role: str
    """"upstream" | "relay" | "server"."""
    url: str | None
    """Base URL; stats polled at url + "/__harness/stats" when has_stats."""
    pid: int | None
    """Process to sample (with its children); None = not sampled (remote)."""
    upstream_port: int | None
    """Count this process's TCP connections to this port; None = don't."""
    has_stats: bool = True
    probe: ProbeClient | None = None
    """The tracemalloc probe it runs under (``ProbeClient.for_child``): traced memory per tick, snapshots."""
    agent_url: str | None = None
    """A ``harness agent`` sampling it on its own host (pid None here); its stats come from the agent too when
    the agent was given ``--stats-url``, so set has_stats False then."""


@dataclass(frozen=True, slots=True)
class SamplerConfig:
    """What meta.json records under ``sampler``."""

    interval_s: float
    connections_method: str | None
    """netlink | ss | psutil; None when no target's connections are counted."""
    connections_method_reason: str
    stats_timeout_s: float
    targets: tuple[dict[str, object], ...]


class Sampler:
    """Samples the targets every ``interval_s`` into ``folder`` until ``stop``.

    The Locust plugin calls ``start()`` at test start, ``phase(name)`` at each phase boundary (with
    ``snapshot_label`` at the two boundaries that bracket the load, see the module docstring) and ``stop()`` at
    test stop.
    """

    def __init__(
        self,
        folder: RunFolder,
        targets: Sequence[SampledTarget],
        interval_s: float = 0.25,
        *,
        snapshot_timeout_s: float = 120.0,
        analysis_timeout_s: float = 300.0,
        agent_poll_s: float | None = None,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"sampling interval must be > 0 seconds, but got {interval_s!r}")
        names = [target.name for target in targets]
        if len(set(names)) != len(names):
            raise ValueError(f"sampled target names must be unique, but got {names!r}")
        for target in targets:
            if target.agent_url is not None and target.pid is not None:
                raise ValueError(
                    f"target {target.name!r} is sampled by the agent at {target.agent_url}, so its pid must be "
                    f"None (a pid on the agent's host means nothing here), but got {target.pid}"
                )
        self.folder = folder
        self.targets = tuple(targets)
        self.interval_s = interval_s
        self.stats_timeout_s = min(1.0, max(0.05, interval_s * 0.8))
        self.snapshot_timeout_s = snapshot_timeout_s
        self.analysis_timeout_s = analysis_timeout_s
        self.agent_poll_s = agent_poll_s if agent_poll_s is not None else max(1.0, interval_s)
        if not self.agent_poll_s > 0:
            raise ValueError(f"agent poll interval must be > 0 seconds, but got {agent_poll_s!r}")
        self._processes = ProcessSampler((t.name, t.pid) for t in self.targets if t.pid is not None)
        self._counter: ConnectionCounter | None = None
        self._stats = StatsPoller(
            [StatsTarget(t.name, t.url, owner_of(t.name)) for t in self.targets if t.has_stats and t.url],
            timeout_s=self.stats_timeout_s,
        )
        probes = {t.name: t.probe for t in self.targets if t.probe is not None}
        self._traced = TracedPoller(probes, self.stats_timeout_s, folder) if probes else None
        tracing = {name: probe for name, probe in probes.items() if probe.tracing}
        self._snapshots = Snapshots(
            folder, tracing, snapshot_timeout_s=snapshot_timeout_s, analysis_timeout_s=analysis_timeout_s
        )
        agent_timeout_s = min(2.0, max(0.2, self.agent_poll_s))
        feeds = [
            AgentFeed(AgentClient(t.agent_url, timeout_s=agent_timeout_s), t.name, folder)
            for t in self.targets
            if t.agent_url is not None
        ]
        self._agents = AgentPoller(feeds, self.agent_poll_s, folder) if feeds else None
        self._tick_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ticks = 0
        self._overruns = 0
        self._busy_s = 0.0
        self._started_at: float | None = None
        self._stopped = False

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Record the sampler's config in meta.json and begin ticking (and polling agents) in background threads."""
        if self._thread is not None:
            raise RuntimeError("Sampler.start() was already called")
        watched = [
            (t.name, t.pid, t.upstream_port) for t in self.targets if t.pid is not None and t.upstream_port is not None
        ]
        method: str | None = None
        reason = "no target has both a pid and an upstream port"
        if watched:
            try:
                self._counter = ConnectionCounter(watched)
                method, reason = self._counter.method, self._counter.method_reason
            except OSError as error:
                reason = str(error)
                self.folder.event("sampler_warning", "connections", f"upstream connections not counted: {error}")
        config = SamplerConfig(
            interval_s=self.interval_s,
            connections_method=method,
            connections_method_reason=reason,
            stats_timeout_s=self.stats_timeout_s,
            targets=tuple(
                {
                    "name": t.name,
                    "role": t.role,
                    "url": t.url,
                    "pid": t.pid,
                    "upstream_port": t.upstream_port,
                    "probe": t.probe.url if t.probe is not None else None,
                    "agent_url": t.agent_url,
                }
                for t in self.targets
            ),
        )
        sampler_meta = {**asdict(config), "started_at": time.time(), "tables": self.tables()}
        if self._agents is not None:
            sampler_meta["agent_poll_s"] = self.agent_poll_s
        changes: dict[str, Any] = {"sampler": sampler_meta}
        if self._snapshots.probes:
            changes["tracemalloc"] = self._snapshots.start()
        if self._agents is not None:
            changes["agents"] = self._agents.summary()
        self.folder.update_meta(**changes)
        # Open the tables now so a run with no rows yet still has readable (header-only) files.
        self._samples = self.folder.table("samples", SAMPLE_COLUMNS)
        self._connections = self.folder.table("connections", CONNECTION_COLUMNS)
        self._stats_table = self.folder.table("stats", STATS_COLUMNS)
        self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="harness-sampler", daemon=True)
        self._thread.start()
        if self._agents is not None:
            self._agents.start()

    @staticmethod
    def tables() -> dict[str, list[str]]:
        """The tables the sampler writes, with their columns."""
        return {
            "samples": list(SAMPLE_COLUMNS),
            "connections": list(CONNECTION_COLUMNS),
            "stats": list(STATS_COLUMNS),
        }

    def phase(self, name: str, snapshot_label: str | None = None) -> SnapshotRound | None:
        """A phase boundary: a ``phase_start`` event and a sample row per target with its USS, at the same ``t``.

        With ``snapshot_label`` (``runfolder.BEFORE`` or ``runfolder.AFTER``), also ``snapshot(snapshot_label)``,
        returned without waiting for it.
        """
        t = time.time()
        self.folder.event("phase_start", name, "", t=t)
        if self._thread is not None:
            with self._tick_lock:
                rows = [sample.row(t) for sample in self._processes.sample(t, with_uss=True)]
                self._samples.extend(rows)
                self._report_incidents()
        return self.snapshot(snapshot_label) if snapshot_label is not None else None

    def snapshot(self, label: str) -> SnapshotRound:
        """Ask every probed target for a tracemalloc snapshot and census, in the background; return at once
        (``Snapshots.take``)."""
        return self._snapshots.take(label)

    def stop(self) -> None:
        """Stop the threads (bounded waits), take a final tick and poll, fetch the upstream's per-stream records,
        finish the tracemalloc snapshots and analyse them, and record it all in meta.json."""
        if self._thread is None or self._stopped:
            return
        self._stopped = True
        self._snapshots.complete()
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 2 * self.stats_timeout_s + 1.0)
        alive = self._thread.is_alive()
        if alive:
            self.folder.event("sampler_warning", "sampler", "sampler thread did not stop within its deadline")
        self._tick()
        if self._agents is not None:
            self._agents.stop()
        self._fetch_upstream_streams()
        self._stats.close()
        if self._traced is not None:
            self._traced.close()
        if self._counter is not None:
            self._counter.close()
        elapsed = time.monotonic() - (self._started_at or time.monotonic())
        with contextlib.suppress(OSError):
            meta = self.folder.read_meta()
            sampler = dict(meta.get("sampler") or {})
            sampler.update(
                stopped_at=time.time(),
                ticks=self._ticks,
                overruns=self._overruns,
                busy_s=round(self._busy_s, 4),
                busy_percent_of_one_core=round(100 * self._busy_s / elapsed, 3) if elapsed > 0 else None,
            )
            changes: dict[str, Any] = {"sampler": sampler}
            if self._agents is not None:
                changes["agents"] = self._agents.summary()
            self.folder.update_meta(**changes)
        self.finish_tracemalloc()

    @property
    def ticks(self) -> int:
        """Ticks taken so far."""
        return self._ticks

    def finish_tracemalloc(self) -> dict[str, dict[str, Any]]:
        """Analyse the growth of every target that has both snapshots, once (``Snapshots.finish``)."""
        return self._snapshots.finish()

    # --- ticking ------------------------------------------------------------------------------------------------

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._tick()
            next_at += self.interval_s
            now = time.monotonic()
            if now > next_at:  # overran: skip the grid points missed
                self._overruns += 1
                next_at += ((now - next_at) // self.interval_s + 1) * self.interval_s
            self._stop.wait(next_at - now)

    def _tick(self) -> None:
        with self._tick_lock:
            started = time.thread_time()
            t = time.time()
            deadline = time.monotonic() + self.stats_timeout_s
            dead = frozenset(
                target.name
                for target in self.targets
                if target.pid is not None and not self._processes.alive(target.name)
            )
            sent = self._stats.begin(skip=dead)
            traced_sent: Sent = {}
            if self._traced is not None:
                traced_sent = self._traced.begin(skip=dead | self._snapshots.busy())
            samples = [sample.row(t) for sample in self._processes.sample(t)]
            connections = []
            if self._counter is not None:
                method = self._counter.method
                try:
                    connections = [count.row(t, method) for count in self._counter.count()]
                except OSError as error:
                    self.folder.event("sampler_warning", "connections", f"counting failed this tick: {error}", t=t)
            stats = self._stats.collect(t, sent, deadline)
            if self._traced is not None:
                self._traced.merge(t, samples, traced_sent, deadline)
            self._samples.extend(samples)
            self._connections.extend(connections)
            self._stats_table.extend(stats)
            self._report_incidents()
            self._ticks += 1
            # thread_time: this thread's own CPU, not the wall time spent waiting for the targets to answer.
            self._busy_s += time.thread_time() - started

    def _report_incidents(self) -> None:
        for died in self._processes.take_died():
            self.folder.event("target_died", died.target, died.detail)
        for warning in self._processes.take_warnings():
            self.folder.event("sampler_warning", "process", warning)
        if self._counter is not None:
            for warning in self._counter.take_warnings():
                self.folder.event("sampler_warning", "connections", warning)

    def _fetch_upstream_streams(self) -> None:
        """Every upstream's records, each tagged with the target it serves (``upstream@<target>``)."""
        for upstream in self.targets:
            if upstream.role != "upstream" or not upstream.url or not upstream.has_stats:
                continue
            try:
                rows = fetch_upstream_streams(upstream.url, target=owner_of(upstream.name))
            except (OSError, ValueError) as error:
                self.folder.event("sampler_warning", "upstream_streams", f"could not fetch {upstream.url}: {error}")
                continue
            self.folder.table("upstream_streams").extend(rows)
