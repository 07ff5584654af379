"""The probes' tracemalloc snapshots during a run: rounds taken in the background, then the growth analysis.

``Snapshots.take(label)`` asks every probed target for a tracemalloc snapshot and an object census, in threads of
their own (a snapshot stalls its target for tens of ms to seconds; the sampler's ticks go on meanwhile, leaving
that target's traced columns blank: ``busy()`` names them). When to take them, from the Locust plugin:

- ``sampler.phase(first_phase_after_warmup, snapshot_label=BEFORE)``: when the warm-up phase ends, so the first
  snapshot holds the server's steady state (imports, pools, caches) and not the growth under load;
- ``sampler.phase("drain", snapshot_label=AFTER)``: when the drain phase starts, i.e. at the end of the load but
  before the servers free what the load left in them (a snapshot after the drain would miss buffers that are
  freed once their streams end);
- ``finish()`` (called by ``Sampler.stop()``) takes the ``AFTER`` snapshot itself for a target that has a
  ``BEFORE`` but no ``AFTER`` (a test stopped early), waits for pending snapshots, then runs the growth analysis
  (``python -m harness.analyse.growth`` in a subprocess: out of the Locust process, whose hub it would block for
  seconds, and without capture importing analyse) and records it in meta.json's ``tracemalloc``.
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
from dataclasses import dataclass, field
from typing import Any

from harness.capture.probe_client import ProbeClient, SnapshotTaken
from harness.errors import TargetError
from harness.runfolder import AFTER, BEFORE, RunFolder, TracemallocFiles

__all__ = ["SnapshotRound", "Snapshots", "probe_nframe"]


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

    def finished(self) -> None:
        """Mark the round done: every target's snapshot written or failed."""
        self._done.set()

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


def probe_nframe(probe: ProbeClient, timeout_s: float = 2.0) -> int | None:
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
class _Books:
    """What meta.json ``tracemalloc`` says: the probes' nframe, the rounds, the growth analyses."""

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


class Snapshots:
    """The snapshot rounds of one run's probed targets, and the growth analysis at its end."""

    def __init__(
        self,
        folder: RunFolder,
        probes: Mapping[str, ProbeClient],
        *,
        snapshot_timeout_s: float = 120.0,
        analysis_timeout_s: float = 300.0,
    ) -> None:
        self.folder = folder
        self.probes = dict(probes)
        self.snapshot_timeout_s = snapshot_timeout_s
        self.analysis_timeout_s = analysis_timeout_s
        self._books = _Books()
        self._lock = threading.Lock()
        self._snapshotting: set[str] = set()

    def start(self) -> dict[str, Any]:
        """Ask each probe its nframe; return meta.json's ``tracemalloc`` as it stands at the start."""
        self._books.nframe = {name: probe_nframe(probe) for name, probe in self.probes.items()}
        return self._books.meta(self.folder)

    def busy(self) -> frozenset[str]:
        """The targets taking a snapshot right now (stalled: not worth asking for their traced memory)."""
        with self._lock:
            return frozenset(self._snapshotting)

    def take(self, label: str) -> SnapshotRound:
        """Ask every probed target for a tracemalloc snapshot and census, in the background; return at once.

        Files go to ``TracemallocFiles(folder.tracemalloc, target)``; each target writes a
        ``tracemalloc_snapshot`` event when done (or a ``sampler_warning`` if it failed). A round starts only
        after the previous one finished, so two snapshots never overlap in one target.
        """
        if not label or not all(ch.isalnum() or ch in "-_" for ch in label):
            raise ValueError(f"snapshot label must be letters, digits, - or _ (e.g. {BEFORE!r}), but got {label!r}")
        with self._lock:
            previous = self._books.rounds[-1] if self._books.rounds else None
            snapshot_round = SnapshotRound(label, time.time(), list(self.probes))
            self._books.rounds.append(snapshot_round)
        if not self.probes:
            snapshot_round.finished()
            return snapshot_round
        threading.Thread(
            target=self._take_round, args=(snapshot_round, previous), name=f"harness-snapshot-{label}", daemon=True
        ).start()
        return snapshot_round

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
                for name, probe in self.probes.items()
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=self.snapshot_timeout_s + 5.0)
        finally:
            snapshot_round.finished()

    def _take_one(self, snapshot_round: SnapshotRound, name: str, probe: ProbeClient) -> None:
        files = TracemallocFiles(self.folder.tracemalloc, name)
        label = snapshot_round.label
        with self._lock:
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
            with self._lock:
                self._snapshotting.discard(name)
        snapshot_round.taken[name] = taken
        self.folder.event(
            "tracemalloc_snapshot",
            name,
            f"{label}: {taken.traces} traces, {taken.current_bytes} bytes traced; the target stalled "
            f"{taken.took_s:.3f} s ({taken.snapshot_s:.3f} s for the snapshot)",
            t=started,
        )

    def complete(self) -> None:
        """Take the AFTER snapshot where only BEFORE was asked for (a test stopped early); wait for all rounds."""
        with self._lock:
            labels = {r.label for r in self._books.rounds}
        if self.probes and BEFORE in labels and AFTER not in labels:
            self.folder.event("tracemalloc_note", "tracemalloc", f"snapshot {AFTER!r} was not asked for: taken at stop")
            self.take(AFTER)
        with self._lock:
            rounds = list(self._books.rounds)
        deadline = time.monotonic() + self.snapshot_timeout_s + 5.0
        for snapshot_round in rounds:
            if not snapshot_round.wait(max(0.0, deadline - time.monotonic())):
                self.folder.event(
                    "sampler_warning", "tracemalloc", f"snapshot {snapshot_round.label!r} did not finish in time"
                )

    def finish(self) -> dict[str, dict[str, Any]]:
        """Analyse the growth of every target that has both snapshots; record it all in meta.json ``tracemalloc``.

        Once only. Runs ``python -m harness.analyse.growth`` per target in a subprocess (the analysis loads both
        snapshots: seconds of CPU and memory the sampling process should not spend). Returns
        ``{target: {"summary": file, "keepers": [...], ...} or {"error": ...}}``.
        """
        if self._books.finished or not self.probes:
            return self._books.growth
        self._books.finished = True
        self.complete()
        for name in self.probes:
            files = TracemallocFiles(self.folder.tracemalloc, name)
            needed = [files.snapshot(BEFORE), files.census(BEFORE), files.snapshot(AFTER), files.census(AFTER)]
            missing = [path.name for path in needed if not path.is_file()]
            if missing:
                self._books.growth[name] = {"error": f"no growth analysis: missing {', '.join(missing)}"}
                continue
            self._books.growth[name] = self._analyse(files)
        with contextlib.suppress(OSError):
            self.folder.update_meta(tracemalloc=self._books.meta(self.folder))
        return self._books.growth

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
