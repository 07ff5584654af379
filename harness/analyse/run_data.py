"""A run folder read back into pandas: its tables, its phases and its time windows, for the analysis and report.

Reading never edits the folder. A table that is missing, empty or cut short by a killed run reads as the rows it
has (an empty frame with the fixed columns when none); a folder that is not a run folder, or one with no
measurement at all, raises RunFolderError with one line. A run whose meta.json ``status`` is not ``complete`` is
read as far as it got and marked ``incomplete``.

Windows (epoch seconds) come from the phase events: the warm-up is the first phase whose name contains "warm",
the drain the last phase whose name contains "drain". Without them the first and last tenth of the sampled time
stand in, and ``windows.source`` says so.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import RunFolderError
from harness.runfolder import TABLES, RunFolder

__all__ = ["PhaseSpan", "RunData", "TargetInfo", "Windows", "load_run", "read_table", "verify_tables"]

_TEXT_COLUMNS = frozenset(
    {
        "kind",
        "name",
        "detail",
        "target",
        "stream_id",
        "behaviour",
        "worker",
        "outcome",
        "leave_how",
        "leave_when",
        "error",
        "id",
        "id_channel",
        "upstream_id",
        "api",
        "upstream_of",
        "route",
        "end_reason",
        "method",
        "extra",
    }
)
"""Columns read as text (empty cell = ""); every other column is numeric (empty or bad cell = NaN)."""

_FALLBACK_SHARE = 0.1
"""Without a warm-up (drain) phase, the first (last) tenth of the sampled time stands in for it."""


@dataclass(frozen=True, slots=True)
class PhaseSpan:
    name: str
    start: float
    end: float
    """Epoch seconds; a phase without a phase_end event ends where the next one starts (or the run ends)."""


@dataclass(frozen=True, slots=True)
class Windows:
    """The stretches of a run the metrics look at, in epoch seconds."""

    start: float
    """The run's first moment on the shared time axis (first phase, first sample or first client)."""
    end: float
    warmup_end: float
    drain_start: float
    drain_end: float
    source: str
    """"phases" when warm-up and drain came from phase events, else a sentence saying what stood in."""

    def relative(self, t: float) -> float:
        """Seconds since the start of the run."""
        return t - self.start


@dataclass(frozen=True, slots=True)
class TargetInfo:
    name: str
    role: str
    """upstream | relay | server (meta.json), or "unknown" for a name seen only in the tables."""


@dataclass(frozen=True, slots=True)
class RunData:
    path: Path
    meta: dict[str, Any]
    events: pd.DataFrame
    samples: pd.DataFrame
    connections: pd.DataFrame
    stats: pd.DataFrame
    clients: pd.DataFrame
    upstream_streams: pd.DataFrame
    phases: tuple[PhaseSpan, ...]
    windows: Windows
    targets: tuple[TargetInfo, ...]
    status: str
    incomplete_reason: str
    """Empty for a complete run, else one sentence on why the run is incomplete."""

    @property
    def incomplete(self) -> bool:
        return bool(self.incomplete_reason)

    def target(self, name: str) -> TargetInfo:
        for info in self.targets:
            if info.name == name:
                return info
        raise KeyError(name)


def read_table(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """One CSV table: text columns as str, the rest numeric; unreadable trailing rows dropped."""
    empty = pd.DataFrame({column: pd.Series(dtype=str if column in _TEXT_COLUMNS else float) for column in columns})
    if not path.is_file() or path.stat().st_size == 0:
        return empty
    try:
        frame = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            on_bad_lines="skip",
            engine="c",
            quoting=csv.QUOTE_MINIMAL,
        )
    except pd.errors.EmptyDataError:
        return empty
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise RunFolderError(f"{str(path)!r} is not a readable CSV table: {error}") from error
    for column in columns:
        if column not in frame.columns:
            frame[column] = ""
    for column in frame.columns:
        if column not in _TEXT_COLUMNS:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame.reset_index(drop=True)


def _phases(events: pd.DataFrame, run_end: float) -> tuple[PhaseSpan, ...]:
    rows = events[events["kind"].isin(["phase_start", "phase_end"])].dropna(subset=["t"]).sort_values("t")
    starts: list[tuple[str, float]] = []
    ends: dict[str, float] = {}
    for kind, name, t in zip(rows["kind"], rows["name"], rows["t"], strict=True):
        if kind == "phase_start":
            starts.append((str(name), float(t)))
        else:
            ends.setdefault(str(name), float(t))
    spans = []
    for index, (name, start) in enumerate(starts):
        following = starts[index + 1][1] if index + 1 < len(starts) else run_end
        spans.append(PhaseSpan(name, start, max(start, min(ends.get(name, following), following))))
    return tuple(spans)


def _times(*columns: pd.Series) -> list[float]:
    found: list[float] = []
    for column in columns:
        values = column.dropna()
        if len(values):
            found += [float(values.min()), float(values.max())]
    return found


def _windows(phases: tuple[PhaseSpan, ...], start: float, end: float) -> Windows:
    warm = next((phase for phase in phases if "warm" in phase.name.lower()), None)
    drain = next((phase for phase in reversed(phases) if "drain" in phase.name.lower()), None)
    span = max(end - start, 0.0)
    notes = []
    if warm is None:
        notes.append("no warm-up phase: the first 10% of the run stands in for it")
    if drain is None:
        notes.append("no drain phase: the last 10% of the run stands in for it")
    return Windows(
        start=start,
        end=end,
        warmup_end=warm.end if warm else start + _FALLBACK_SHARE * span,
        drain_start=drain.start if drain else end - _FALLBACK_SHARE * span,
        drain_end=drain.end if drain else end,
        source="; ".join(notes) if notes else "phases",
    )


def _targets(meta: dict[str, Any], *frames: pd.DataFrame) -> tuple[TargetInfo, ...]:
    found: dict[str, TargetInfo] = {}
    for entry in meta.get("targets") or []:
        if isinstance(entry, dict) and entry.get("name"):
            found[str(entry["name"])] = TargetInfo(str(entry["name"]), str(entry.get("role") or "unknown"))
    for frame in frames:
        for name in frame["target"].dropna().unique():
            if name and str(name) not in found:
                found[str(name)] = TargetInfo(str(name), "unknown")
    return tuple(found.values())


def load_run(path: Path) -> RunData:
    """Read the run folder at ``path``; RunFolderError if it is not one or holds no measurement."""
    folder = RunFolder.open(path)
    meta = folder.read_meta()
    tables = {name: read_table(folder.file(name), columns) for name, columns in TABLES.items()}
    events, samples, clients = tables["events"], tables["samples"], tables["clients"]
    stats, connections, upstream = tables["stats"], tables["connections"], tables["upstream_streams"]
    if not any(len(tables[name]) for name in ("samples", "stats", "connections", "clients", "upstream_streams")):
        raise RunFolderError(
            f"run folder {str(path)!r} holds no measurements yet: samples, stats, connections, clients and "
            "upstream_streams tables are all missing or empty"
        )
    phase_starts = events.loc[events["kind"] == "phase_start", "t"]
    times = _times(samples["t"], stats["t"], connections["t"], clients["start"], clients["end"])
    start = float(phase_starts.min()) if phase_starts.notna().any() else min(times)
    end = max([*times, *_times(events["t"])])
    phases = _phases(events, end)
    status = str(meta.get("status") or "unknown")
    reason = ""
    if status == "running":
        reason = "meta.json still says 'running': the run was killed, or is still being written"
    elif status != "complete":
        reason = f"meta.json says the run ended as {status!r}, not 'complete'"
    return RunData(
        path=path,
        meta=meta,
        events=events,
        samples=samples,
        connections=connections,
        stats=stats,
        clients=clients,
        upstream_streams=upstream,
        phases=phases,
        windows=_windows(phases, start, end),
        targets=_targets(meta, samples, stats, clients),
        status=status,
        incomplete_reason=reason,
    )


def verify_tables(run: RunData) -> None:
    """For a run that says it completed, refuse a table cut short or corrupt: RunFolderError naming the file.

    A killed or interrupted run may end its tables mid-row (they are read as far as they go); a complete one has
    every row whole: as many fields as its header, and a final newline.
    """
    if run.incomplete:
        return
    for name in TABLES:
        path = run.path / f"{name}.csv"
        if not path.is_file() or path.stat().st_size == 0:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise RunFolderError(f"{str(path)!r} is unreadable: {error}") from error
        if not text.endswith("\n"):
            raise RunFolderError(f"{str(path)!r} is truncated: its last row has no line end, in a run marked complete")
        rows = csv.reader(text.splitlines())
        header = next(rows, [])
        for number, row in enumerate(rows, start=2):
            if len(row) != len(header):
                raise RunFolderError(
                    f"{str(path)!r} is corrupt: line {number} has {len(row)} fields, its header {len(header)}"
                )
