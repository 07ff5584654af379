"""The probes' readings at each tick, into samples.csv's ``traced_bytes``, ``traced_peak_bytes`` and
``asyncio_tasks``.

Asked alongside the stats (in worker threads, one pending request per probe) and bounded by the same deadline; a
probe that does not answer leaves them blank, with one ``sampler_warning`` event when it stops answering and one
when it answers again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from harness.capture.probe_client import ProbeClient, ProbeReading
from harness.errors import TargetError
from harness.runfolder import RunFolder

__all__ = ["TracedPoller"]

Sent = dict[str, Future[ProbeReading] | None]
"""The requests of one tick by target; None where the previous request is still unanswered."""


class TracedPoller:
    """The probes' traced memory, asked in worker threads like the stats: one pending request per probe."""

    def __init__(self, probes: Mapping[str, ProbeClient], timeout_s: float, folder: RunFolder) -> None:
        # Copies with the tick's short timeout: the caller's client keeps its own for snapshots.
        self._clients = {
            name: ProbeClient(probe.port, probe.token, target=probe.target, timeout_s=timeout_s)
            for name, probe in probes.items()
        }
        self._folder = folder
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self._clients)), thread_name_prefix="probe-traced")
        self._pending: dict[str, Future[ProbeReading]] = {}
        self._failing: set[str] = set()

    def begin(self, skip: frozenset[str]) -> Sent:
        """Ask every probe not in ``skip`` (dead or snapshotting targets) for its traced memory."""
        sent: Sent = {}
        for name, client in self._clients.items():
            if name in skip:
                continue
            pending = self._pending.get(name)
            if pending is not None and not pending.done():
                sent[name] = None
                continue
            self._pending[name] = sent[name] = self._pool.submit(client.reading)
        return sent

    @staticmethod
    def collect(sent: Sent, deadline: float) -> tuple[dict[str, ProbeReading], dict[str, str]]:
        """(readings, failures) for the requests ``begin`` sent, waiting at most until ``deadline``."""
        readings: dict[str, ProbeReading] = {}
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

    def merge(self, t: float, samples: list[dict[str, object]], sent: Sent, deadline: float) -> None:
        """Collect the answers to ``sent`` into the tick's sample rows (a row of its own for a probed target
        whose process is not sampled here); one warning when a probe stops answering, one when it answers again."""
        readings, failures = self.collect(sent, deadline)
        by_target = {row["target"]: row for row in samples}
        for name, memory in readings.items():
            row = by_target.get(name)
            if row is None:
                row = {"t": t, "target": name}
                samples.append(row)
            if memory.current_bytes is not None:  # a probe that only counts traces nothing
                row["traced_bytes"] = memory.current_bytes
                row["traced_peak_bytes"] = memory.peak_bytes
            row["asyncio_tasks"] = memory.asyncio_tasks
            if name in self._failing:
                self._failing.discard(name)
                self._folder.event("sampler_warning", "probe", f"tracemalloc probe of {name} answers again", t=t)
        for name, reason in failures.items():
            if name not in self._failing:
                self._failing.add(name)
                self._folder.event(
                    "sampler_warning",
                    "probe",
                    f"tracemalloc probe of {name} did not answer: {reason}; traced_bytes blank until it does",
                    t=t,
                )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
