"""The process sampler: each target's process and its children, read with psutil several times a second.

One ``psutil.Process`` is kept per pid (so ``cpu_percent`` has its previous reading and psutil its caches), and
each process's readings are grouped in ``oneshot()``. A target's row sums its process tree. USS (the memory only
that process holds) walks every mapping and costs ~185 us per process, so it is read only when asked
(``sample(with_uss=True)``, at phase boundaries).

A pid that does not exist, or disappears, is reported once (``died``) and no longer sampled; the other targets
go on. A reading psutil may not take (AccessDenied) is left blank, with one warning naming the reading and why.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import psutil

from harness.runfolder import TABLES

__all__ = ["SAMPLE_COLUMNS", "ProcessSample", "ProcessSampler", "TargetDied", "process_tree_pids"]

SAMPLE_COLUMNS = TABLES["samples"]
"""samples.csv: one row per sampled target per tick, summed over its process tree. ``uss_bytes`` is filled only
on the rows taken at phase boundaries; ``cpu_percent`` is blank on a target's first tick; a reading that was
denied is blank."""


_PROC_CHILDREN = os.path.exists(f"/proc/self/task/{os.getpid()}/children")  # noqa: PTH110 (CONFIG_PROC_CHILDREN)


def process_tree_pids(pid: int) -> list[int]:
    """``pid`` and its descendants, read from /proc/PID/task/TID/children (cheap: no scan of every process).

    Falls back to psutil (which scans all of /proc, ~2 ms) on kernels without CONFIG_PROC_CHILDREN.
    Raises ProcessLookupError if ``pid`` is gone.
    """
    if not _PROC_CHILDREN:
        try:
            return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
        except psutil.NoSuchProcess:
            raise ProcessLookupError(f"no process with pid {pid}") from None
    pids = [pid]
    index = 0
    while index < len(pids):
        current = pids[index]
        index += 1
        try:
            tasks = [entry.name for entry in os.scandir(f"/proc/{current}/task")]
        except FileNotFoundError:
            if current == pid:
                raise ProcessLookupError(f"no process with pid {pid}") from None
            continue  # a child that exited meanwhile
        for task in tasks:
            with contextlib.suppress(FileNotFoundError):  # a thread that exited meanwhile
                with open(f"/proc/{current}/task/{task}/children", "rb") as file:  # noqa: PTH123 (hot path)
                    pids.extend(int(child) for child in file.read().split())
    return pids


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """One target's process tree at one instant."""

    target: str
    pid: int
    processes: int
    """The process and its live descendants."""
    rss_bytes: int | None
    uss_bytes: int | None
    """Only when asked for (phase boundaries)."""
    cpu_percent: float | None
    """Percent of one core since the previous tick, summed over the tree; None on the first reading."""
    num_fds: int | None
    num_threads: int | None
    children: int

    def row(self, t: float) -> dict[str, object]:
        return {
            "t": t,
            "target": self.target,
            "pid": self.pid,
            "processes": self.processes,
            "rss_bytes": self.rss_bytes,
            "uss_bytes": self.uss_bytes,
            "cpu_percent": self.cpu_percent,
            "num_fds": self.num_fds,
            "num_threads": self.num_threads,
            "children": self.children,
        }


@dataclass(frozen=True, slots=True)
class TargetDied:
    """A target's root process was found gone."""

    target: str
    pid: int
    last_seen: float | None
    """Epoch seconds of its last successful reading; None if it never existed while sampled."""
    detail: str


@dataclass(slots=True)
class _Tracked:
    name: str
    pid: int
    processes: dict[int, psutil.Process] = field(default_factory=dict)
    last_seen: float | None = None
    dead: bool = False


_READINGS = ("rss_bytes", "cpu_percent", "num_fds", "num_threads", "uss_bytes")


class ProcessSampler:
    """Samples the process trees of named pids; keeps psutil objects between ticks."""

    def __init__(self, targets: Iterable[tuple[str, int]]) -> None:
        self._targets = [_Tracked(name, pid) for name, pid in targets]
        self.died: list[TargetDied] = []
        """Deaths found since the caller last took them (``take_died``)."""
        self.warnings: list[str] = []
        """One-line warnings since the caller last took them (``take_warnings``)."""
        self._warned: set[tuple[str, str]] = set()

    def take_died(self) -> list[TargetDied]:
        died, self.died = self.died, []
        return died

    def take_warnings(self) -> list[str]:
        warnings, self.warnings = self.warnings, []
        return warnings

    def alive(self, name: str) -> bool:
        return any(tracked.name == name and not tracked.dead for tracked in self._targets)

    def _deny(self, tracked: _Tracked, pid: int, reading: str, error: psutil.AccessDenied) -> None:
        if (tracked.name, reading) not in self._warned:
            self._warned.add((tracked.name, reading))
            who = "the target" if pid == tracked.pid else f"its child pid {pid}"
            self.warnings.append(
                f"{reading} of target {tracked.name!r} (pid {tracked.pid}) is missing: permission denied reading "
                f"{who} ({error.msg or 'AccessDenied'}); run the harness as the target's user or as root"
            )

    def sample(self, t: float, *, with_uss: bool = False) -> list[ProcessSample]:
        """One sample per live target; deaths found are appended to ``died``."""
        samples = []
        for tracked in self._targets:
            if tracked.dead:
                continue
            sample = self._sample_tree(tracked, t, with_uss)
            if sample is None:
                tracked.dead = True
                gone = "did not exist when sampling started" if tracked.last_seen is None else "vanished"
                seen = "" if tracked.last_seen is None else f"; last seen alive at t={tracked.last_seen:.3f}"
                self.died.append(
                    TargetDied(tracked.name, tracked.pid, tracked.last_seen, f"pid {tracked.pid} {gone}{seen}")
                )
                continue
            tracked.last_seen = t
            samples.append(sample)
        return samples

    def _sample_tree(self, tracked: _Tracked, t: float, with_uss: bool) -> ProcessSample | None:
        try:
            pids = process_tree_pids(tracked.pid)
        except ProcessLookupError:
            return None
        totals: dict[str, float | None] = dict.fromkeys(_READINGS, 0)
        first_cpu = False
        live = 0
        for pid in pids:
            process = tracked.processes.get(pid)
            new = process is None
            try:
                if process is None:
                    process = tracked.processes[pid] = psutil.Process(pid)
                readings = self._read(tracked, pid, process, with_uss)
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                tracked.processes.pop(pid, None)
                if pid == tracked.pid:
                    return None
                continue
            live += 1
            if new:
                # cpu_percent's first call measures nothing; a new child's is left out, the root's blanks the row.
                readings["cpu_percent"] = None
                first_cpu = first_cpu or pid == tracked.pid
            for key, value in readings.items():
                if key == "cpu_percent" and value is None:
                    continue
                current = totals[key]
                totals[key] = None if value is None or current is None else current + value
        for pid in set(tracked.processes) - set(pids):
            del tracked.processes[pid]  # exited children: forget, so a reused pid starts fresh
        if first_cpu:
            totals["cpu_percent"] = None
        if not with_uss:
            totals["uss_bytes"] = None
        return ProcessSample(
            target=tracked.name,
            pid=tracked.pid,
            processes=live,
            rss_bytes=_int(totals["rss_bytes"]),
            uss_bytes=_int(totals["uss_bytes"]),
            cpu_percent=None if totals["cpu_percent"] is None else round(totals["cpu_percent"], 2),
            num_fds=_int(totals["num_fds"]),
            num_threads=_int(totals["num_threads"]),
            children=live - 1,
        )

    def _read(self, tracked: _Tracked, pid: int, process: psutil.Process, with_uss: bool) -> dict[str, float | None]:
        readings: dict[str, float | None] = {}
        with process.oneshot():
            if process.status() == psutil.STATUS_ZOMBIE:  # exited, not yet reaped by its parent: gone for us
                raise psutil.ZombieProcess(pid)
            for key in _READINGS:
                if key == "uss_bytes" and not with_uss:
                    continue
                try:
                    readings[key] = _reading(process, key)
                except psutil.AccessDenied as error:
                    readings[key] = None
                    self._deny(tracked, pid, key, error)
        return readings


def _reading(process: psutil.Process, key: str) -> float:
    if key == "rss_bytes":
        return float(process.memory_info().rss)
    if key == "cpu_percent":
        return process.cpu_percent(None)
    if key == "num_fds":
        return float(process.num_fds())
    if key == "num_threads":
        return float(process.num_threads())
    if key == "uss_bytes":
        return float(process.memory_full_info().uss)
    raise AssertionError(key)


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)
