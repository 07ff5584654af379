"""The samplers' orchestrator: one clock, one background thread, rows into the run folder as they come.

Each tick takes the time once (``t``, epoch seconds), sends the stats requests, reads the process trees and the
upstream connections while those are in flight, collects the stats until a deadline, and appends every row
(flushed) to samples.csv, connections.csv and stats.csv. Ticks are scheduled on a fixed grid; a tick that
overruns skips the grid points it missed instead of bunching up.

On ``stop`` meta.json's ``sampler`` gains ``ticks``, ``overruns`` and ``busy_percent_of_one_core``: the CPU time
of the ticking thread during its ticks (under gevent, that includes whatever other greenlets ran while a tick
waited for the stats, so read it as an upper bound there).

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

from harness.connections import CONNECTION_COLUMNS, ConnectionCounter
from harness.process_sampler import SAMPLE_COLUMNS, ProcessSampler
from harness.runfolder import RunFolder
from harness.stats_poller import STATS_COLUMNS, StatsPoller, StatsTarget, fetch_upstream_streams

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
    """Samples the targets every ``interval_s`` into ``folder`` until ``stop``."""

    def __init__(self, folder: RunFolder, targets: Sequence[SampledTarget], interval_s: float = 0.25) -> None:
        if not interval_s > 0:
            raise ValueError(f"sampling interval must be > 0 seconds, but got {interval_s!r}")
        names = [target.name for target in targets]
        if len(set(names)) != len(names):
            raise ValueError(f"sampled target names must be unique, but got {names!r}")
        self.folder = folder
        self.targets = tuple(targets)
        self.interval_s = interval_s
        self.stats_timeout_s = min(1.0, max(0.05, interval_s * 0.8))
        self._processes = ProcessSampler((t.name, t.pid) for t in self.targets if t.pid is not None)
        self._counter: ConnectionCounter | None = None
        self._stats = StatsPoller(
            [StatsTarget(t.name, t.url) for t in self.targets if t.has_stats and t.url],
            timeout_s=self.stats_timeout_s,
        )
        self._tick_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ticks = 0
        self._overruns = 0
        self._busy_s = 0.0
        self._started_at: float | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Record the sampler's config in meta.json and begin ticking in a background thread."""
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
                {"name": t.name, "role": t.role, "url": t.url, "pid": t.pid, "upstream_port": t.upstream_port}
                for t in self.targets
            ),
        )
        self.folder.update_meta(sampler={**asdict(config), "started_at": time.time(), "tables": self.tables()})
        # Open the tables now so a run with no rows yet still has readable (header-only) files.
        self._samples = self.folder.table("samples", SAMPLE_COLUMNS)
        self._connections = self.folder.table("connections", CONNECTION_COLUMNS)
        self._stats_table = self.folder.table("stats", STATS_COLUMNS)
        self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="harness-sampler", daemon=True)
        self._thread.start()

    @staticmethod
    def tables() -> dict[str, list[str]]:
        """The tables the sampler writes, with their columns."""
        return {
            "samples": list(SAMPLE_COLUMNS),
            "connections": list(CONNECTION_COLUMNS),
            "stats": list(STATS_COLUMNS),
        }

    def phase(self, name: str) -> None:
        """A phase boundary: a ``phase_start`` event and a sample row per target with its USS, at the same ``t``."""
        t = time.time()
        self.folder.event("phase_start", name, "", t=t)
        if self._thread is None:
            return  # not started: the event alone
        with self._tick_lock:
            rows = [sample.row(t) for sample in self._processes.sample(t, with_uss=True)]
            self._samples.extend(rows)
            self._report_incidents()

    def stop(self) -> None:
        """Stop the thread (bounded wait), take a final tick, fetch the upstream's per-stream records."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 2 * self.stats_timeout_s + 1.0)
        alive = self._thread.is_alive()
        if alive:
            self.folder.event("sampler_warning", "sampler", "sampler thread did not stop within its deadline")
        self._tick()
        self._fetch_upstream_streams()
        self._stats.close()
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
            self.folder.update_meta(sampler=sampler)

    @property
    def ticks(self) -> int:
        """Ticks taken so far."""
        return self._ticks

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
            samples = [sample.row(t) for sample in self._processes.sample(t)]
            connections = []
            if self._counter is not None:
                method = self._counter.method
                try:
                    connections = [count.row(t, method) for count in self._counter.count()]
                except OSError as error:
                    self.folder.event("sampler_warning", "connections", f"counting failed this tick: {error}", t=t)
            stats = self._stats.collect(t, sent, deadline)
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
        upstream = next((t for t in self.targets if t.role == "upstream" and t.url and t.has_stats), None)
        if upstream is None or upstream.url is None:
            return
        try:
            rows = fetch_upstream_streams(upstream.url)
        except (OSError, ValueError) as error:
            self.folder.event("sampler_warning", "upstream_streams", f"could not fetch {upstream.url}: {error}")
            return
        self.folder.table("upstream_streams").extend(rows)
