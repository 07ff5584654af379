"""Where memory grew between two probe snapshots, and who keeps it: the out-of-process half of the probe.

From the tracemalloc snapshots and object censuses the probe took at two moments (after the warm-up and at the
end of the load), it finds:

- growth sites: the snapshots' difference grouped by traceback (top N by size), with the probe's, the harness's
  and tracemalloc's own allocations dropped and runpy/probe frames cut off the tracebacks. This says where the
  memory was *allocated*, e.g. aiohttp's ``client_proto.py`` ``data_received`` for the eager relay;
- growth by type, and held growth: which containers hold the leaves (bytes, str...) that grew, and, from the
  census's sampled instances, who holds those containers, e.g. ``bytes`` held by ``collections.deque`` held by
  ``targets.relay.ByteBuffer._chunks``. This says who *keeps* it.

The file names of a run folder's ``tracemalloc/`` subfolder are fixed in harness.runfolder (``TracemallocFiles``).
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import linecache
import sys
import sysconfig
import tracemalloc
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, RunFolderError, UsageError
from harness.runfolder import AFTER, BEFORE, TracemallocFiles

__all__ = [
    "AFTER",
    "BEFORE",
    "GrowthReport",
    "GrowthSite",
    "HeldGrowth",
    "TracemallocFiles",
    "TypeGrowth",
    "analyse",
    "compare_censuses",
    "compare_snapshots",
    "main",
    "write_report",
]

_HARNESS_DIR = str(Path(__file__).resolve().parent.parent)
_OWN_ALLOCATIONS = (
    f"{_HARNESS_DIR}/*",
    "*/harness/capture/probe.py",
    "*/harness/capture/census.py",
    tracemalloc.__file__,
    "*/tracemalloc.py",
)
"""Traces whose most recent frame is here are the harness's own (the probe's requests and census)."""
_CUT_FRAMES = (
    "*/runpy.py",
    f"{_HARNESS_DIR}/*",
    "*/harness/capture/probe.py",
    "*/harness/capture/program.py",
    "<frozen runpy>",
)
"""Frames below the program: how the probe started it. Cut from the tracebacks shown."""


@dataclass(frozen=True, slots=True)
class GrowthSite:
    """One traceback whose allocations grew between the snapshots."""

    rank: int
    size_diff_bytes: int
    count_diff: int
    size_bytes: int
    """Held at the second snapshot by allocations from this traceback."""
    count: int
    site: str
    """The most recent frame, ``package/module.py:line``."""
    code: str
    """That line's source, when this machine has it."""
    traceback: tuple[str, ...]
    """Frames, most recent first, without the probe's."""


@dataclass(frozen=True, slots=True)
class TypeGrowth:
    """Live objects of one type (containers counted once; leaves once per reference, sized by share)."""

    type: str
    count_before: int
    count_after: int
    count_diff: int
    bytes_before: int
    bytes_after: int
    bytes_diff: int


@dataclass(frozen=True, slots=True)
class HeldGrowth:
    """Leaves of one type held by containers of one type, and who holds the biggest of those containers."""

    container: str
    leaf: str
    count_diff: int
    bytes_before: int
    bytes_after: int
    bytes_diff: int
    held_by: tuple[str, ...]
    """'targets.relay.ByteBuffer._chunks (3 of 3 sampled)': holders of the biggest containers at the end."""


@dataclass(frozen=True, slots=True)
class GrowthReport:
    target: str
    traced_before_bytes: int
    traced_after_bytes: int
    snapshot_diff_bytes: int
    """Sum of all size differences between the filtered snapshots."""
    sites: tuple[GrowthSite, ...]
    types: tuple[TypeGrowth, ...]
    held: tuple[HeldGrowth, ...]
    keepers: tuple[str, ...]
    """'Who keeps it' in sentences, biggest first."""


# -- snapshots ----------------------------------------------------------------------------------------------------


def _load_snapshot(path: Path) -> tracemalloc.Snapshot:
    try:
        snapshot = tracemalloc.Snapshot.load(str(path))
    except FileNotFoundError:
        raise RunFolderError(f"tracemalloc snapshot {str(path)!r} does not exist") from None
    except Exception as error:  # pickle raises anything on a damaged file
        raise RunFolderError(f"{str(path)!r} is not a tracemalloc snapshot: {error!r}") from error
    return snapshot.filter_traces([tracemalloc.Filter(False, pattern) for pattern in _OWN_ALLOCATIONS])


def _short(filename: str) -> str:
    """``/venv/lib/python3.11/site-packages/aiohttp/client_proto.py`` -> ``aiohttp/client_proto.py``."""
    for marker in ("/site-packages/", "/dist-packages/"):
        if marker in filename:
            return filename.rsplit(marker, 1)[1]
    stdlib = sysconfig.get_paths()["stdlib"]
    if filename.startswith(stdlib + "/"):
        return filename[len(stdlib) + 1 :]
    try:
        return str(Path(filename).relative_to(Path.cwd()))
    except ValueError:
        return filename


def _frames(trace: tracemalloc.Traceback) -> list[tracemalloc.Frame]:
    """Most recent first, cut at the first frame that belongs to how the probe started the program."""
    kept = []
    for frame in reversed(list(trace)):  # a Traceback runs oldest first
        if any(fnmatch.fnmatch(frame.filename, pattern) for pattern in _CUT_FRAMES):
            break
        kept.append(frame)
    return kept or list(reversed(list(trace)))[:1]


def _line(frame: tracemalloc.Frame) -> str:
    return linecache.getline(frame.filename, frame.lineno).strip()


def compare_snapshots(before: Path, after: Path, top: int = 20) -> tuple[int, list[GrowthSite]]:
    """The sum of size differences, and the ``top`` tracebacks whose allocations grew most."""
    old, new = _load_snapshot(before), _load_snapshot(after)
    differences = new.compare_to(old, "traceback")
    total = sum(diff.size_diff for diff in differences)
    grown = sorted((diff for diff in differences if diff.size_diff > 0), key=lambda diff: -diff.size_diff)
    sites = []
    for rank, diff in enumerate(grown[:top], start=1):
        frames = _frames(diff.traceback)
        sites.append(
            GrowthSite(
                rank=rank,
                size_diff_bytes=diff.size_diff,
                count_diff=diff.count_diff,
                size_bytes=diff.size,
                count=diff.count,
                site=f"{_short(frames[0].filename)}:{frames[0].lineno}",
                code=_line(frames[0]),
                traceback=tuple(f"{_short(frame.filename)}:{frame.lineno}" for frame in frames),
            )
        )
    return total, sites


# -- censuses -----------------------------------------------------------------------------------------------------


def _load_census(path: Path) -> dict[str, Any]:
    try:
        census = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunFolderError(f"object census {str(path)!r} does not exist") from None
    except (OSError, ValueError) as error:
        raise RunFolderError(f"object census {str(path)!r} is unreadable: {error}") from error
    if not isinstance(census, dict) or census.get("format") != 1:
        raise RunFolderError(f"{str(path)!r} is not an object census of format 1")
    return census


def _holders_of(census: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """container type -> ('holder (k of n sampled)', ...), most frequent holder first."""
    by_container: dict[str, Counter[str]] = {}
    for row in census.get("holders", []):
        by_container.setdefault(row["container"], Counter())[row["held_by"]] += 1
    return {
        container: tuple(f"{name} ({k} of {sum(names.values())} sampled)" for name, k in names.most_common())
        for container, names in by_container.items()
    }


def compare_censuses(
    before: dict[str, Any], after: dict[str, Any], top: int = 20
) -> tuple[list[TypeGrowth], list[HeldGrowth]]:
    """Types and (container, leaf) pairs whose bytes grew most, biggest first; holders from ``after``."""
    old_types = {row["type"]: row for row in before.get("types", [])}
    new_types = {row["type"]: row for row in after.get("types", [])}
    types = []
    for name in old_types.keys() | new_types.keys():
        old, new = old_types.get(name, {}), new_types.get(name, {})
        types.append(
            TypeGrowth(
                type=name,
                count_before=int(old.get("count", 0)),
                count_after=int(new.get("count", 0)),
                count_diff=int(new.get("count", 0)) - int(old.get("count", 0)),
                bytes_before=int(old.get("bytes", 0)),
                bytes_after=int(new.get("bytes", 0)),
                bytes_diff=int(new.get("bytes", 0)) - int(old.get("bytes", 0)),
            )
        )
    types.sort(key=lambda row: -row.bytes_diff)
    old_held = {(row["container"], row["leaf"]): row for row in before.get("held", [])}
    new_held = {(row["container"], row["leaf"]): row for row in after.get("held", [])}
    holders = _holders_of(after)
    held = []
    for key in old_held.keys() | new_held.keys():
        old, new = old_held.get(key, {}), new_held.get(key, {})
        held.append(
            HeldGrowth(
                container=key[0],
                leaf=key[1],
                count_diff=int(new.get("count", 0)) - int(old.get("count", 0)),
                bytes_before=int(old.get("bytes", 0)),
                bytes_after=int(new.get("bytes", 0)),
                bytes_diff=int(new.get("bytes", 0)) - int(old.get("bytes", 0)),
                held_by=holders.get(key[0], ()),
            )
        )
    held.sort(key=lambda row: -row.bytes_diff)
    return types[:top], held[:top]


def _mib(size: int) -> str:
    return f"{size / 2**20:+.1f} MiB"


def keepers(held: Sequence[HeldGrowth], sites: Sequence[GrowthSite], *, min_bytes: int = 1 << 20) -> list[str]:
    """'Who keeps it', one sentence per (container, leaf) pair that grew at least ``min_bytes``."""
    sentences = []
    for row in held:
        if row.bytes_diff < min_bytes:
            break
        holder = f", kept in {row.held_by[0]}" if row.held_by else ""
        sentences.append(f"{_mib(row.bytes_diff)} of {row.leaf} held by {row.container}{holder}")
    if sentences and sites:
        sentences.append(f"allocated mostly at {sites[0].site} ({_mib(sites[0].size_diff_bytes)})")
    return sentences


def analyse(files: TracemallocFiles, before: str = BEFORE, after: str = AFTER, top: int = 20) -> GrowthReport:
    """Compare the target's two snapshots and censuses in ``files``; RunFolderError if one is missing."""
    total, sites = compare_snapshots(files.snapshot(before), files.snapshot(after), top)
    old, new = _load_census(files.census(before)), _load_census(files.census(after))
    types, held = compare_censuses(old, new, top)
    return GrowthReport(
        target=files.target,
        traced_before_bytes=int(old.get("traced_current_bytes", 0)),
        traced_after_bytes=int(new.get("traced_current_bytes", 0)),
        snapshot_diff_bytes=total,
        sites=tuple(sites),
        types=tuple(types),
        held=tuple(held),
        keepers=tuple(keepers(held, sites)),
    )


# -- output -------------------------------------------------------------------------------------------------------


def _write_csv(path: Path, rows: Iterable[Any], kind: type) -> None:
    columns = [field.name for field in fields(kind)]
    aside = path.with_name(path.name + ".tmp")
    with aside.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            values = [getattr(row, column) for column in columns]
            writer.writerow(
                [
                    (" <- " if column == "traceback" else " | ").join(value) if isinstance(value, tuple) else value
                    for column, value in zip(columns, values, strict=True)
                ]
            )
    aside.replace(path)


def write_report(report: GrowthReport, files: TracemallocFiles) -> list[Path]:
    """Write the growth tables (CSV) and the summary (JSON); return their paths.

    In the CSVs a traceback's frames are joined with ' <- ' (most recent first), alternative holders with ' | '.
    """
    files.folder.mkdir(parents=True, exist_ok=True)
    _write_csv(files.sites, report.sites, GrowthSite)
    _write_csv(files.types, report.types, TypeGrowth)
    _write_csv(files.held, report.held, HeldGrowth)
    summary = asdict(report)
    files.summary.write_text(json.dumps(summary, indent=2) + "\n")
    return [files.sites, files.types, files.held, files.summary]


def render_text(report: GrowthReport, rows: int = 5) -> str:
    """A few lines for a terminal."""
    lines = [
        f"{report.target}: traced {_mib(report.traced_after_bytes - report.traced_before_bytes)} "
        f"between the snapshots ({_mib(report.snapshot_diff_bytes)} outside the harness)"
    ]
    lines += [f"  who keeps it: {sentence}" for sentence in report.keepers]
    lines += [f"  {_mib(site.size_diff_bytes):>12}  {site.site}  {site.code}" for site in report.sites[:rows]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.analyse.growth RUN_FOLDER/tracemalloc TARGET [--top N]``: analyse and write the tables."""
    parser = argparse.ArgumentParser(prog="python -m harness.analyse.growth", description=main.__doc__)
    parser.add_argument("folder", type=Path, help="a run folder's tracemalloc/ subfolder")
    parser.add_argument("target", help="target name, as in the snapshot file names (e.g. eager)")
    parser.add_argument("--top", type=int, default=20, help="rows per table (default: 20)")
    args = parser.parse_args(argv)
    try:
        if args.top < 1:
            raise UsageError(f"--top must be at least 1, but got {args.top}")
        files = TracemallocFiles(args.folder, args.target)
        report = analyse(files, top=args.top)
        write_report(report, files)
    except HarnessError as error:
        sys.stderr.write(f"harness growth: error: {error}\n")
        return error.exit_code
    sys.stdout.write(render_text(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
