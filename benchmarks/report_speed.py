"""How long `harness report` takes for a 10-minute run with 1,000 streams (goal: under 5 s).

Crafts a run folder of that size (4 targets sampled every 250 ms: samples, connections and stats rows; 1,000
client streams over three relays with their upstream records), then times loading, analysis and rendering,
best of N. Run: python benchmarks/report_speed.py [--streams 1000] [--minutes 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from harness.analyse.analysis import analyse_run
from harness.analyse.run_data import load_run
from harness.report.html import render_report, write_report
from harness.runfolder import RunFolder

T0 = 1_800_000_000.0
RELAYS = ("eager", "lazy", "bounded")


def craft(root: Path, minutes: float, streams: int, interval_s: float = 0.25) -> Path:
    rng = np.random.default_rng(7)
    duration = minutes * 60
    folder = RunFolder.create(root, "speed")
    folder.update_meta(
        targets=[{"name": "upstream", "role": "upstream", "url": None, "pid": 1}]
        + [{"name": name, "role": "relay", "url": None, "pid": 2 + i} for i, name in enumerate(RELAYS)]
    )
    for name, start, end in (
        ("warm-up", 0, 60),
        ("slow readers", 60, duration - 60),
        ("drain", duration - 60, duration),
    ):
        folder.event("phase_start", name, t=T0 + start)
        folder.event("phase_end", name, t=T0 + end)
    ticks = np.arange(0, duration, interval_s)
    names = ("upstream", *RELAYS)
    folder.table("samples").extend(
        {"t": T0 + float(t), "target": name, "pid": 1, "processes": 1, "rss_bytes": int(40e6 + i * 1e4 * t)}
        for t in ticks
        for i, name in enumerate(names)
    )
    folder.table("connections").extend(
        {"t": T0 + float(t), "target": name, "established": int(rng.integers(0, 50)), "total": 50}
        for t in ticks
        for name in RELAYS
    )
    folder.table("stats").extend(
        {"t": T0 + float(t), "target": name, "ok": 1, "open_upstream_streams": 3, "buffered_bytes": 1000}
        for t in ticks
        for name in RELAYS
    )
    starts = np.sort(rng.uniform(60, duration - 90, streams))
    clients, upstream = [], []
    for index, start in enumerate(starts):
        relay = RELAYS[index % len(RELAYS)]
        leave = start + float(rng.uniform(0.1, 20))
        up_end = leave + (float(rng.uniform(1, 5)) if relay == "eager" else 0.01)
        stream_id = f"s-{index:06d}"
        clients.append(
            {
                "stream_id": stream_id,
                "target": relay,
                "behaviour": "paced:1024Bps" if index % 2 else "fast+leave_after_tokens:5:reset",
                "start": T0 + start,
                "first_byte": T0 + start + 0.01,
                "first_token": T0 + start + 0.02,
                "end": T0 + leave,
                "outcome": "left" if index % 2 == 0 else "completed",
                "status": 200,
                "tokens": 50,
                "bytes": 5000,
            }
        )
        upstream.append(
            {
                "id": stream_id,
                "route": "/v1/chat/completions",
                "start": T0 + start + 0.005,
                "first_token": T0 + start + 0.015,
                "end": T0 + up_end,
                "tokens_sent": 60,
                "bytes_sent": 3840,
                "end_reason": "peer_closed",
            }
        )
    folder.table("clients").extend(clients)
    folder.table("upstream_streams").extend(upstream)
    folder.finish()
    return folder.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = craft(Path(tmp), args.minutes, args.streams)
        rows = sum(sum(1 for _ in file.open()) - 1 for file in path.glob("*.csv"))
        print(f"run folder: {args.minutes:g} min, {args.streams} streams, {rows} CSV rows")
        load_s, analyse_s, render_s, total_s = [], [], [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            run = load_run(path)
            loaded = time.perf_counter()
            summary = analyse_run(run)
            analysed = time.perf_counter()
            render_report(run, summary)
            rendered = time.perf_counter()
            write_report(path)
            written = time.perf_counter()
            load_s.append(loaded - started)
            analyse_s.append(analysed - loaded)
            render_s.append(rendered - analysed)
            total_s.append(written - rendered)
        size = (path / "report.html").stat().st_size
        print(f"load     {min(load_s):6.3f} s  (best of {args.repeat})")
        print(f"analyse  {min(analyse_s):6.3f} s")
        print(f"render   {min(render_s):6.3f} s")
        print(f"write_report end to end {min(total_s):6.3f} s (goal < 5 s); report.html {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
