"""The samplers' orchestrator: one clock, one background thread, rows into the run folder as they come.

Each tick takes the time once (``t``, epoch seconds), sends the stats requests, reads the process trees and the
upstream connections while those are in flight, collects the stats until a deadline, and appends every row
(flushed) to samples.csv, connections.csv and stats.csv. Ticks are scheduled on a fixed grid; a tick that
overruns skips the grid points it missed instead of bunching up.

On ``stop`` meta.json's ``sampler`` gains ``ticks``, ``overruns`` and ``busy_percent_of_one_core``: the CPU time
of the ticking thread during its ticks (under gevent, that includes whatever other greenlets ran while a tick
waited for the stats, so read it as an upper bound there).

Targets under the tracemalloc probe (``SampledTarget.probe``): each tick also reads the probe's traced memory
(cheap) into samples.csv's ``traced_bytes`` and ``traced_peak_bytes``, asked alongside the stats and bounded by
the same deadline; a probe that does not answer leaves them blank, with one ``sampler_warning`` event when it
stops answering and one when it answers again. ``snapshot(label)`` asks every probe for a tracemalloc snapshot
and an object census, in threads of their own (a snapshot stalls its target for tens of ms to seconds; the ticks
go on meanwhile, leaving that target's traced columns blank). When to call it, from the Locust plugin:

- ``sampler.phase(first_phase_after_warmup, snapshot_label=growth.BEFORE)``: when the warm-up phase ends, so
  the first snapshot holds the server's steady state (imports, pools, caches) and not the growth under load;
- ``sampler.phase("drain", snapshot_label=growth.AFTER)``: when the drain phase starts, i.e. at the end of the
  load but before the servers free what the load left in them (a snapshot after the drain would miss buffers
  that are freed once their streams end);
- ``stop()`` takes the ``AFTER`` snapshot itself for a target that has a ``BEFORE`` but no ``AFTER`` (a test
  stopped early), waits for pending snapshots, then runs the growth analysis (``python -m harness.analyse.growth`` in a
  subprocess: out of the Locust process, whose hub it would block for seconds) and records it in meta.json's
  ``tracemalloc``.

Targets on another host (``SampledTarget.agent_url``): a ``harness agent`` samples them there; a poller thread
(not the ticks: an agent far away must not hold them) fetches its new rows every ``agent_poll_s`` and appends
them under the master's name for the target (capture/agent_client.py). The rows keep the agent's clock; meta.json
``agents.<target>`` records the measured offset between the clocks, the outages, and whether that target's server
figures are ``complete``, ``partial`` or ``missing``.

Runs in plain Python and in the gevent-patched Locust process, where the thread is a greenlet: every step is
short or cooperative (urllib, the netlink socket and subprocess yield to the hub), and nothing waits without a
deadline.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.analyse.growth import AFTER, BEFORE, TracemallocFiles
from harness.capture.agent_client import AgentClient, AgentFeed
from harness.capture.connections import CONNECTION_COLUMNS, ConnectionCounter
from harness.capture.probe_client import ProbeClient, SnapshotTaken, TracedMemory
from harness.capture.process_sampler import SAMPLE_COLUMNS, ProcessSampler
from harness.capture.stats_poller import STATS_COLUMNS, StatsPoller, StatsTarget, fetch_upstream_streams
from harness.errors import TargetError
from harness.runfolder import RunFolder

__all__ = ["SampledTarget", "Sampler", "SamplerConfig", "SnapshotRound"]


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


class SnapshotRound:
    """One ``Sampler.snapshot(label)``: a tracemalloc snapshot and census per probed target, in the background."""

    def __init__(self, label: str, requested_at: float, targets: Sequence[str]) -> None:
        self.label = label
        self.requested_at = requested_at
        self.targets = tuple(targets)
        self.taken: dict[str, SnapshotTaken] = {}
        self.errors: dict[str, str] = {}
        self.started_at: dict[str, float] = {}
        self._done = threading.Event()

    def __repr__(self) -> str:
        state = "done" if self.done else "pending"
        return f"<SnapshotRound {self.label} {state} taken={sorted(self.taken)} errors={sorted(self.errors)}>"

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout_s: float) -> bool:
        """Block until every target's snapshot is written or failed (at most ``timeout_s``); return whether so."""
        return self._done.wait(timeout_s)

    def record(self, name: str) -> dict[str, Any]:
        """What meta.json says of this round for target ``name``."""
        entry: dict[str, Any] = {"requested_at": self.requested_at, "started_at": self.started_at.get(name)}
        if name in self.taken:
            taken = self.taken[name]
            entry.update(
                snapshot=taken.snapshot_path.name,
                census=taken.census_path.name if taken.census_path else None,
                traces=taken.traces,
                current_bytes=taken.current_bytes,
                peak_bytes=taken.peak_bytes,
                snapshot_s=round(taken.snapshot_s, 4),
                stalled_s=round(taken.took_s, 4),
            )
        else:
            entry["error"] = self.errors.get(name, "not finished before the run ended")
        return entry


class _TracedPoller:
    """The probes' traced memory, asked in worker threads like the stats: one pending request per probe."""

    def __init__(self, probes: Mapping[str, ProbeClient], timeout_s: float) -> None:
        # Copies with the tick's short timeout: the caller's client keeps its own for snapshots.
        self._clients = {
            name: ProbeClient(probe.port, probe.token, target=probe.target, timeout_s=timeout_s)
            for name, probe in probes.items()
        }
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self._clients)), thread_name_prefix="probe-traced")
        self._pending: dict[str, Future[TracedMemory]] = {}

    def begin(self, skip: frozenset[str]) -> dict[str, Future[TracedMemory] | None]:
        sent: dict[str, Future[TracedMemory] | None] = {}
        for name, client in self._clients.items():
            if name in skip:
                continue
            pending = self._pending.get(name)
            if pending is not None and not pending.done():
                sent[name] = None
                continue
            self._pending[name] = sent[name] = self._pool.submit(client.traced)
        return sent

    @staticmethod
    def collect(
        sent: Mapping[str, Future[TracedMemory] | None], deadline: float
    ) -> tuple[dict[str, TracedMemory], dict[str, str]]:
        """(readings, failures) for the requests ``begin`` sent, waiting at most until ``deadline``."""
        readings: dict[str, TracedMemory] = {}
        failures: dict[str, str] = {}
        for name, future in sent.items():
            if future is None:
                failures[name] = "its previous request is still unanswered"
                continue
            try:
                readings[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                failures[name] = "no answer within the tick"
            except (TargetError, ValueError, KeyError) as error:
                failures[name] = str(error)
        return readings, failures

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _probe_nframe(probe: ProbeClient, timeout_s: float = 2.0) -> int | None:
    """The probe's tracemalloc traceback limit (its ``--nframe``), from /traced; None if it does not say."""
    request = urllib.request.Request(probe.url + "/traced", headers={"Authorization": f"Bearer {probe.token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            answer = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    nframe = answer.get("nframe") if isinstance(answer, dict) else None
    return nframe if isinstance(nframe, int) else None


@dataclass(slots=True)
class _Tracemalloc:
    """The Sampler's tracemalloc bookkeeping (meta.json ``tracemalloc``)."""

    nframe: dict[str, int | None] = field(default_factory=dict)
    rounds: list[SnapshotRound] = field(default_factory=list)
    growth: dict[str, dict[str, Any]] = field(default_factory=dict)
    finished: bool = False

    def meta(self, folder: RunFolder) -> dict[str, Any]:
        return {
            "folder": folder.tracemalloc.name,
            "profiled": [{"target": name, "nframe": nframe} for name, nframe in self.nframe.items()],
            "snapshots": {
                name: {r.label: r.record(name) for r in self.rounds if name in r.targets} for name in self.nframe
            },
            "growth": dict(self.growth),
        }


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
            [StatsTarget(t.name, t.url) for t in self.targets if t.has_stats and t.url],
            timeout_s=self.stats_timeout_s,
        )
        self._probes = {t.name: t.probe for t in self.targets if t.probe is not None}
        self._traced = _TracedPoller(self._probes, self.stats_timeout_s) if self._probes else None
        self._probe_failing: set[str] = set()
        self._snapshotting: set[str] = set()
        self._tracemalloc = _Tracemalloc()
        self._rounds_lock = threading.Lock()
        agent_timeout_s = min(2.0, max(0.2, self.agent_poll_s))
        self._feeds = [
            AgentFeed(AgentClient(t.agent_url, timeout_s=agent_timeout_s), t.name, folder)
            for t in self.targets
            if t.agent_url is not None
        ]
        self._agents_stop = threading.Event()
        self._agents_thread: threading.Thread | None = None
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
        if self._feeds:
            sampler_meta["agent_poll_s"] = self.agent_poll_s
        changes: dict[str, Any] = {"sampler": sampler_meta}
        if self._probes:
            self._tracemalloc.nframe = {name: _probe_nframe(probe) for name, probe in self._probes.items()}
            changes["tracemalloc"] = self._tracemalloc.meta(self.folder)
        if self._feeds:
            changes["agents"] = {feed.target: feed.summary() for feed in self._feeds}
        self.folder.update_meta(**changes)
        # Open the tables now so a run with no rows yet still has readable (header-only) files.
        self._samples = self.folder.table("samples", SAMPLE_COLUMNS)
        self._connections = self.folder.table("connections", CONNECTION_COLUMNS)
        self._stats_table = self.folder.table("stats", STATS_COLUMNS)
        self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="harness-sampler", daemon=True)
        self._thread.start()
        if self._feeds:
            self._agents_thread = threading.Thread(target=self._poll_agents, name="harness-agent-poll", daemon=True)
            self._agents_thread.start()

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

        With ``snapshot_label`` (``growth.BEFORE`` or ``growth.AFTER``), also ``snapshot(snapshot_label)``,
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
        """Ask every probed target for a tracemalloc snapshot and census, in the background; return at once.

        Files go to ``TracemallocFiles(folder.tracemalloc, target)``; each target writes a
        ``tracemalloc_snapshot`` event when done (or a ``sampler_warning`` if it failed). A round starts only
        after the previous one finished, so two snapshots never overlap in one target.
        """
        if not label or not all(ch.isalnum() or ch in "-_" for ch in label):
            raise ValueError(f"snapshot label must be letters, digits, - or _ (e.g. {BEFORE!r}), but got {label!r}")
        with self._rounds_lock:
            previous = self._tracemalloc.rounds[-1] if self._tracemalloc.rounds else None
            snapshot_round = SnapshotRound(label, time.time(), list(self._probes))
            self._tracemalloc.rounds.append(snapshot_round)
        if not self._probes:
            snapshot_round._done.set()
            return snapshot_round
        threading.Thread(
            target=self._take_round, args=(snapshot_round, previous), name=f"harness-snapshot-{label}", daemon=True
        ).start()
        return snapshot_round

    def stop(self) -> None:
        """Stop the threads (bounded waits), take a final tick and poll, fetch the upstream's per-stream records,
        finish the tracemalloc snapshots and analyse them, and record it all in meta.json."""
        if self._thread is None or self._stopped:
            return
        self._stopped = True
        self._complete_snapshots()
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 2 * self.stats_timeout_s + 1.0)
        alive = self._thread.is_alive()
        if alive:
            self.folder.event("sampler_warning", "sampler", "sampler thread did not stop within its deadline")
        self._tick()
        self._stop_agents()
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
            if self._feeds:
                changes["agents"] = {feed.target: feed.summary() for feed in self._feeds}
            self.folder.update_meta(**changes)
        self.finish_tracemalloc()

    @property
    def ticks(self) -> int:
        """Ticks taken so far."""
        return self._ticks

    # --- tracemalloc ---------------------------------------------------------------------------------------------

    def _take_round(self, snapshot_round: SnapshotRound, previous: SnapshotRound | None) -> None:
        try:
            if previous is not None and not previous.wait(self.snapshot_timeout_s):
                self.folder.event(
                    "sampler_warning",
                    "tracemalloc",
                    f"snapshot {snapshot_round.label!r} started before snapshot {previous.label!r} finished",
                )
            threads = [
                threading.Thread(target=self._take_one, args=(snapshot_round, name, probe), daemon=True)
                for name, probe in self._probes.items()
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=self.snapshot_timeout_s + 5.0)
        finally:
            snapshot_round._done.set()

    def _take_one(self, snapshot_round: SnapshotRound, name: str, probe: ProbeClient) -> None:
        files = TracemallocFiles(self.folder.tracemalloc, name)
        label = snapshot_round.label
        with self._rounds_lock:
            self._snapshotting.add(name)  # the ticks leave its traced columns blank meanwhile, without a warning
        started = time.time()
        snapshot_round.started_at[name] = started
        try:
            taken = probe.snapshot(files.snapshot(label), files.census(label), timeout_s=self.snapshot_timeout_s)
        except TargetError as error:
            snapshot_round.errors[name] = str(error)
            self.folder.event("sampler_warning", "tracemalloc", f"snapshot {label!r} of {name}: {error}", t=started)
            return
        finally:
            with self._rounds_lock:
                self._snapshotting.discard(name)
        snapshot_round.taken[name] = taken
        self.folder.event(
            "tracemalloc_snapshot",
            name,
            f"{label}: {taken.traces} traces, {taken.current_bytes} bytes traced; the target stalled "
            f"{taken.took_s:.3f} s ({taken.snapshot_s:.3f} s for the snapshot)",
            t=started,
        )

    def _complete_snapshots(self) -> None:
        """Take the AFTER snapshot where only BEFORE was asked for (a test stopped early); wait for all rounds."""
        with self._rounds_lock:
            labels = {r.label for r in self._tracemalloc.rounds}
        if self._probes and BEFORE in labels and AFTER not in labels:
            self.folder.event("tracemalloc_note", "tracemalloc", f"snapshot {AFTER!r} was not asked for: taken at stop")
            self.snapshot(AFTER)
        with self._rounds_lock:
            rounds = list(self._tracemalloc.rounds)
        deadline = time.monotonic() + self.snapshot_timeout_s + 5.0
        for snapshot_round in rounds:
            if not snapshot_round.wait(max(0.0, deadline - time.monotonic())):
                self.folder.event(
                    "sampler_warning", "tracemalloc", f"snapshot {snapshot_round.label!r} did not finish in time"
                )

    def finish_tracemalloc(self) -> dict[str, dict[str, Any]]:
        """Analyse the growth of every target that has both snapshots; record it all in meta.json ``tracemalloc``.

        Called by ``stop()``; once only. Runs ``python -m harness.analyse.growth`` per target in a subprocess (the
        analysis loads both snapshots: seconds of CPU and memory the sampling process should not spend). Returns
        ``{target: {"summary": file, "keepers": [...], ...} or {"error": ...}}``.
        """
        if self._tracemalloc.finished or not self._probes:
            return self._tracemalloc.growth
        self._tracemalloc.finished = True
        self._complete_snapshots()
        for name in self._probes:
            files = TracemallocFiles(self.folder.tracemalloc, name)
            needed = [files.snapshot(BEFORE), files.census(BEFORE), files.snapshot(AFTER), files.census(AFTER)]
            missing = [path.name for path in needed if not path.is_file()]
            if missing:
                self._tracemalloc.growth[name] = {"error": f"no growth analysis: missing {', '.join(missing)}"}
                continue
            self._tracemalloc.growth[name] = self._analyse(files)
        with contextlib.suppress(OSError):
            self.folder.update_meta(tracemalloc=self._tracemalloc.meta(self.folder))
        return self._tracemalloc.growth

    def _analyse(self, files: TracemallocFiles) -> dict[str, Any]:
        argv = [sys.executable, "-m", "harness.analyse.growth", str(files.folder), files.target]
        try:
            completed = subprocess.run(
                argv, capture_output=True, text=True, timeout=self.analysis_timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            error = f"growth analysis of {files.target} took longer than {self.analysis_timeout_s:g} s"
            self.folder.event("sampler_warning", "tracemalloc", error)
            return {"error": error}
        if completed.returncode != 0:
            lines = completed.stderr.strip().splitlines()
            error = f"growth analysis of {files.target} failed: {lines[-1] if lines else completed.returncode}"
            self.folder.event("sampler_warning", "tracemalloc", error)
            return {"error": error}
        try:
            summary = json.loads(files.summary.read_text())
        except (OSError, ValueError) as exc:
            return {"error": f"growth analysis of {files.target} wrote no readable {files.summary.name}: {exc}"}
        sites = summary.get("sites") or [{}]
        self.folder.event("tracemalloc_growth", files.target, "; ".join(summary.get("keepers") or ["no keeper"]))
        return {
            "summary": files.summary.name,
            "sites": files.sites.name,
            "types": files.types.name,
            "held": files.held.name,
            "snapshot_diff_bytes": summary.get("snapshot_diff_bytes"),
            "traced_before_bytes": summary.get("traced_before_bytes"),
            "traced_after_bytes": summary.get("traced_after_bytes"),
            "top_site": sites[0].get("site"),
            "keepers": summary.get("keepers") or [],
        }

    # --- agents -------------------------------------------------------------------------------------------------

    def _poll_agents(self) -> None:
        while True:
            for feed in self._feeds:
                if self._agents_stop.is_set():
                    return
                feed.poll()
            if self._agents_stop.wait(self.agent_poll_s):
                return

    def _stop_agents(self) -> None:
        if self._agents_thread is None:
            return
        self._agents_stop.set()
        # A poll is at most three requests (samples, meta at first contact, samples again after a restart).
        self._agents_thread.join(timeout=sum(3 * feed.client.timeout_s for feed in self._feeds) + 1.0)
        if self._agents_thread.is_alive():
            self.folder.event("sampler_warning", "agent", "agent poller did not stop within its deadline")
            return
        for feed in self._feeds:  # the rows of the last moments
            feed.poll()

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
            traced_sent: dict[str, Future[TracedMemory] | None] = {}
            if self._traced is not None:
                with self._rounds_lock:
                    busy = frozenset(self._snapshotting)
                traced_sent = self._traced.begin(skip=dead | busy)
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
                readings, failures = self._traced.collect(traced_sent, deadline)
                self._merge_traced(t, samples, readings, failures)
            self._samples.extend(samples)
            self._connections.extend(connections)
            self._stats_table.extend(stats)
            self._report_incidents()
            self._ticks += 1
            # thread_time: this thread's own CPU, not the wall time spent waiting for the targets to answer.
            self._busy_s += time.thread_time() - started

    def _merge_traced(
        self,
        t: float,
        samples: list[dict[str, object]],
        readings: Mapping[str, TracedMemory],
        failures: Mapping[str, str],
    ) -> None:
        by_target = {row["target"]: row for row in samples}
        for name, memory in readings.items():
            row = by_target.get(name)
            if row is None:  # a probed target whose process is not sampled here
                row = {"t": t, "target": name}
                samples.append(row)
            row["traced_bytes"] = memory.current_bytes
            row["traced_peak_bytes"] = memory.peak_bytes
            if name in self._probe_failing:
                self._probe_failing.discard(name)
                self.folder.event("sampler_warning", "probe", f"tracemalloc probe of {name} answers again", t=t)
        for name, reason in failures.items():
            if name not in self._probe_failing:
                self._probe_failing.add(name)
                self.folder.event(
                    "sampler_warning",
                    "probe",
                    f"tracemalloc probe of {name} did not answer: {reason}; traced_bytes blank until it does",
                    t=t,
                )

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
