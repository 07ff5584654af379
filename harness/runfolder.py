"""The run folder: the one place capture, analysis, report and gate meet. This module alone knows its layout.

    reports/<scenario>-<YYYYmmdd-HHMMSS>/
        meta.json             scenario, flags, targets (name, role, url, pid), versions, host, times, status
        events.csv            phase boundaries and incidents, appended as they happen
        samples.csv           process samples (psutil), one row per target per tick
        connections.csv       upstream TCP connections per target per tick, by state
        stats.csv             the targets' and their upstreams' /__harness/stats, one row per target per poll
        clients.csv           one row per client stream (written when the stream ends)
        upstream_streams.csv  each upstream's per-stream records, fetched at the end, tagged with its target
        tracemalloc/          snapshots and growth tables, where profiling was on
        logs/                 each launched target's stdout and stderr

Every table is CSV with a header row, appended and flushed as rows come, so a run killed with SIGKILL keeps
everything up to its last flush; ``pandas.read_csv`` reads each directly. Times are epoch seconds (``t``,
``start``, ``end``...), sizes bytes. ``meta.json`` is replaced atomically; its ``status`` is ``running`` until the
run ends as ``complete`` or ``interrupted`` (a folder still ``running`` with nobody writing it was killed).
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import socket
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

from harness.errors import RunFolderError

__all__ = [
    "AFTER",
    "BEFORE",
    "CLIENT_COLUMNS",
    "EVENT_COLUMNS",
    "META",
    "TABLES",
    "UPSTREAM_PREFIX",
    "UPSTREAM_STREAM_COLUMNS",
    "CsvAppender",
    "RunFolder",
    "TracemallocFiles",
    "owner_of",
    "upstream_name",
    "versions",
]

META = "meta.json"

UPSTREAM_PREFIX = "upstream@"
"""Each target's own fake upstream is the target named ``upstream@<target>`` in every table and in meta.json;
``@`` is no character of a target name, so the two never collide."""


def upstream_name(target: str) -> str:
    """The name of ``target``'s own fake upstream: ``"eager"`` -> ``"upstream@eager"``."""
    return UPSTREAM_PREFIX + target


def owner_of(name: str) -> str | None:
    """The target an upstream serves (``"upstream@eager"`` -> ``"eager"``); None for any other name."""
    return name[len(UPSTREAM_PREFIX) :] if name.startswith(UPSTREAM_PREFIX) else None


CLIENT_COLUMNS = (
    "stream_id",
    "target",
    "behaviour",  # the user's reading/leaving plan, e.g. "paced:1024Bps+leave_after_tokens:5:reset"
    "worker",  # Locust client id of the process that ran it ("local" when not distributed)
    "start",  # request sent
    "first_byte",  # response headers began to arrive
    "first_token",  # first token as the API counts them (first content delta of an AI API, first event, first chunk)
    "end",  # the client left or the stream ended
    "outcome",  # completed | left | truncated | broken | http_error | connect_error
    "leave_how",  # reset | close | "" (when it did not leave on purpose)
    "leave_when",  # before_headers | after_tokens | after_seconds | user_stopped (at a phase boundary) | ""
    "status",  # HTTP status, 0 before headers
    "tokens",  # tokens read: content deltas (AI APIs), data events (sse) or chunks (chunked)
    "bytes",  # body bytes read
    "error",  # one line, when outcome is truncated/broken/http_error/connect_error
    "max_token_gap",  # seconds: the longest gap between two reads that brought tokens ("" below two tokens)
    "upstream_id",  # the fake upstream's own id for the stream, when the response carried it back ("" if not)
)
UPSTREAM_STREAM_COLUMNS = (
    "target",  # the target whose own upstream recorded the stream ("" in runs with one upstream shared by all)
    "id",  # the stream id the upstream read (or assigned itself, when id_channel is "none")
    "id_channel",  # how the id arrived: prompt | header | user | query | none
    "api",  # the API the stream spoke (openai-chat, openai-responses, anthropic, chunked...)
    "route",
    "start",
    "first_token",
    "end",
    "tokens_sent",
    "bytes_sent",
    "end_reason",
)
EVENT_COLUMNS = ("t", "kind", "name", "detail")

TABLES = {
    "events": EVENT_COLUMNS,
    "clients": CLIENT_COLUMNS,
    "upstream_streams": UPSTREAM_STREAM_COLUMNS,
    # One row per sampled target per tick (harness/capture/process_sampler.py), summed over its process tree;
    # uss_bytes only on the rows taken at phase boundaries, cpu_percent blank on a target's first tick.
    # traced_bytes/traced_peak_bytes: tracemalloc's current and peak traced memory, read from the target's probe
    # (capture/traced_memory.py); blank when the target runs without the probe or the probe did not answer in the tick.
    # asyncio_tasks: tasks alive in a probed Python target (capture/probe.py), for the churn check.
    "samples": (
        "t",
        "target",
        "pid",
        "processes",
        "rss_bytes",
        "uss_bytes",
        "cpu_percent",
        "num_fds",
        "num_threads",
        "children",
        "traced_bytes",
        "traced_peak_bytes",
        "asyncio_tasks",
    ),
    # One row per counted target per tick (harness/capture/connections.py): its TCP connections to its upstream's
    # port by state; counts blank (not 0) when they could not be read.
    "connections": (
        "t",
        "target",
        "pid",
        "port",
        "method",
        "established",
        "syn_sent",
        "fin_wait1",
        "fin_wait2",
        "close_wait",
        "last_ack",
        "closing",
        "total",
    ),
    # One row per polled target per tick (harness/capture/stats_poller.py): its /__harness/stats; ok=0 rows are gaps.
    "stats": (
        "t",
        "target",
        "upstream_of",  # on an upstream's rows: the target it serves
        "ok",
        "response_ms",
        "server_time",
        "open_upstream_streams",
        "active_client_streams",
        "buffered_bytes",
        "buffers",
        "upstream_streams_started",
        "client_streams_started",
        "upstream_errors",
        "open_streams",
        "streams_started",
        "tokens_produced",
        "bytes_produced",
        "asyncio_tasks",
        "tags_unparseable",
        "extra",
        "error",
    ),
}
"""Column sets fixed here, so the folder's whole format is in this module; the writers take theirs from here."""


BEFORE, AFTER = "warmup", "end"
"""The labels of the two snapshots the harness takes: after the warm-up, and at the end of the load."""


@dataclass(frozen=True, slots=True)
class TracemallocFiles:
    """The files of one target in a run folder's ``tracemalloc/`` subfolder (``RunFolder.tracemalloc``)."""

    folder: Path
    target: str

    def snapshot(self, label: str) -> Path:
        """tracemalloc.Snapshot.dump of the target at ``label`` (``warmup``, ``end``)."""
        return self.folder / f"{self.target}.{label}.tracemalloc"

    def census(self, label: str) -> Path:
        """The probe's object census (JSON) taken right after that snapshot."""
        return self.folder / f"{self.target}.{label}.census.json"

    @property
    def sites(self) -> Path:
        """growth_sites.csv: the snapshots' difference by traceback, top N."""
        return self.folder / f"{self.target}.growth_sites.csv"

    @property
    def types(self) -> Path:
        """growth_types.csv: live objects by type, before and after."""
        return self.folder / f"{self.target}.growth_types.csv"

    @property
    def held(self) -> Path:
        """growth_held.csv: what containers hold, by (container type, leaf type), and who holds them."""
        return self.folder / f"{self.target}.growth_held.csv"

    @property
    def summary(self) -> Path:
        """growth.json: the totals, the top rows of each table, and the 'who keeps it' sentences."""
        return self.folder / f"{self.target}.growth.json"


def versions() -> dict[str, str]:
    """Versions of Python and of the packages a run depends on."""
    found = {"python": platform.python_version()}
    for package in ("stream-harness", "locust", "aiohttp", "psutil", "pandas", "gevent", "httptools"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


class CsvAppender:
    """Appends rows to one CSV file, flushing after every call so a killed run keeps them."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = path
        self.columns = tuple(columns)
        new = not path.exists() or path.stat().st_size == 0
        self._file: TextIO = path.open("a", newline="", encoding="utf-8")
        self._lock = threading.Lock()
        if new:
            self._write([self.columns])

    def _write(self, rows: Iterable[Sequence[Any]]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        with self._lock:
            self._file.write(buffer.getvalue())
            self._file.flush()

    def append(self, row: Mapping[str, Any]) -> None:
        self.extend([row])

    def extend(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self._write([[_cell(row.get(column)) for column in self.columns] for row in rows])

    def close(self) -> None:
        with self._lock:
            self._file.close()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(round(value, 6))
    return value


class RunFolder:
    """One run's folder: create it, append to its tables, update its meta.json, or open it to read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tables: dict[str, CsvAppender] = {}
        self._meta_lock = threading.RLock()  # held across read-merge-write in update_meta

    @classmethod
    def create(cls, root: Path, scenario: str, meta: Mapping[str, Any] | None = None) -> RunFolder:
        """A new folder ``root/<scenario>-<timestamp>`` (suffixed if taken), with meta.json status ``running``."""
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in scenario) or "run"
        try:
            root.mkdir(parents=True, exist_ok=True)
            for attempt in range(1000):
                path = root / (f"{safe}-{stamp}" + (f"-{attempt}" if attempt else ""))
                try:
                    path.mkdir()
                    break
                except FileExistsError:
                    continue
            else:
                raise RunFolderError(f"cannot find a free run folder name under {str(root)!r}")
        except OSError as error:
            raise RunFolderError(f"cannot create a run folder under {str(root)!r}: {error.strerror}") from error
        folder = cls(path)
        folder.write_meta(
            {
                "format": 1,
                "scenario": scenario,
                "status": "running",
                "started_at": time.time(),
                "ended_at": None,
                "host": socket.gethostname(),
                "platform": platform.platform(),
                "pid": os.getpid(),
                "argv": sys.argv,
                "versions": versions(),
                "targets": [],
                **(meta or {}),
            }
        )
        return folder

    @classmethod
    def open(cls, path: Path) -> RunFolder:
        """An existing run folder; RunFolderError if ``path`` is not one."""
        if not path.is_dir():
            raise RunFolderError(f"run folder {str(path)!r} does not exist or is not a folder")
        if not (path / META).is_file():
            raise RunFolderError(f"{str(path)!r} is not a run folder: it has no {META}")
        folder = cls(path)
        folder.read_meta()
        return folder

    @property
    def logs(self) -> Path:
        path = self.path / "logs"
        path.mkdir(exist_ok=True)
        return path

    @property
    def tracemalloc(self) -> Path:
        path = self.path / "tracemalloc"
        path.mkdir(exist_ok=True)
        return path

    def file(self, table: str) -> Path:
        """The CSV file of ``table`` (``"clients"`` -> clients.csv)."""
        return self.path / f"{table}.csv"

    def table(self, name: str, columns: Sequence[str] | None = None) -> CsvAppender:
        """The appender of table ``name``, opened once; columns default to those fixed in TABLES."""
        if name not in self._tables:
            fixed = columns if columns is not None else TABLES.get(name)
            if fixed is None:
                raise ValueError(f"table {name!r} has no fixed columns; pass them")
            self._tables[name] = CsvAppender(self.file(name), fixed)
        return self._tables[name]

    def event(self, kind: str, name: str = "", detail: str = "", t: float | None = None) -> None:
        """Append to events.csv: phase_start/phase_end (name = phase), target_died, sampler_warning..."""
        at = time.time() if t is None else t
        self.table("events").append({"t": at, "kind": kind, "name": name, "detail": detail})

    def read_meta(self) -> dict[str, Any]:
        try:
            meta = json.loads((self.path / META).read_text())
        except (OSError, ValueError) as error:
            raise RunFolderError(f"{str(self.path / META)!r} is unreadable: {error}") from error
        if not isinstance(meta, dict):
            raise RunFolderError(f"{str(self.path / META)!r} is not a JSON object")
        return meta

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        """Replace meta.json atomically (write aside, then rename)."""
        with self._meta_lock:
            aside = self.path / f".{META}.tmp"
            aside.write_text(json.dumps(meta, indent=2, default=str) + "\n")
            aside.replace(self.path / META)

    def update_meta(self, **changes: Any) -> dict[str, Any]:
        """Merge ``changes`` into meta.json and return the result."""
        with self._meta_lock:
            meta = self.read_meta()
            meta.update(changes)
            self.write_meta(meta)
        return meta

    def finish(self, status: str = "complete") -> None:
        """Close the tables and record how the run ended (``complete`` or ``interrupted``)."""
        for appender in self._tables.values():
            appender.close()
        self._tables.clear()
        self.update_meta(status=status, ended_at=time.time())
