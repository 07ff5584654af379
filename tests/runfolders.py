"""Crafted run folders with known answers, written through harness.runfolder like a real run writes them.

Series are functions of the time since the start (seconds) returning RSS bytes; streams are described by their
client behaviour and how long the upstream stays open after the client leaves, so every figure the analysis
computes has an answer a test can state in advance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.runfolder import RunFolder

T0 = 1_800_000_000.0
"""Epoch seconds of the crafted runs' start."""
MIB = 1 << 20
BASE_RSS = 40 * MIB

Series = Callable[[float], float]


def flat(noise_bytes: float = 64 * 1024, seed: int = 1) -> Series:
    """A steady RSS with small deterministic noise."""
    rng = np.random.default_rng(seed)
    table = rng.uniform(-noise_bytes, noise_bytes, 10_000)
    return lambda t: BASE_RSS + float(table[int(t * 10) % len(table)])


def leak(bytes_per_s: float, start_s: float = 0.0, noise_bytes: float = 64 * 1024) -> Series:
    """Grows at ``bytes_per_s`` from ``start_s`` on (and, like real RSS, never comes back down)."""
    noise = flat(noise_bytes)
    return lambda t: noise(t) + bytes_per_s * max(0.0, t - start_s)


def warmup_spike(height_bytes: float, at_s: float, length_s: float) -> Series:
    """Flat, with a spike of ``height_bytes`` at ``at_s`` that lasts ``length_s`` (e.g. imports, caches)."""
    noise = flat()
    return lambda t: noise(t) + (height_bytes if at_s <= t < at_s + length_s else 0.0)


def step(height_bytes: float, at_s: float, noise_bytes: float = 64 * 1024) -> Series:
    """Flat, then ``height_bytes`` higher from ``at_s`` on, for good (a cache filled once, an arena kept)."""
    noise = flat(noise_bytes)
    return lambda t: noise(t) + (height_bytes if t >= at_s else 0.0)


def sawtooth(height_bytes: float, period_s: float) -> Series:
    """Rises by ``height_bytes`` over each period and falls back (a buffer filled and freed)."""
    noise = flat()
    return lambda t: noise(t) + height_bytes * ((t % period_s) / period_s)


@dataclass(frozen=True, slots=True)
class Stream:
    """One client stream and its upstream stream; times in seconds since the start."""

    stream_id: str
    target: str
    start_s: float
    client_end_s: float
    upstream_end_s: float | None
    """None: never closed (still open when the records were fetched)."""
    tokens_read: int = 5
    tokens_sent: int = 5
    outcome: str = "left"
    behaviour: str = "fast+leave_after_tokens:5:reset"
    to_upstream: bool = True
    """False: the relay dropped the id (the upstream recorded another one)."""


def leaving_streams(
    target: str,
    latencies_s: Sequence[float | None],
    *,
    start_s: float = 12.0,
    every_s: float = 0.5,
    read_s: float = 0.1,
    tokens_per_s: float = 50.0,
    behaviour: str = "fast+leave_after_tokens:5:reset",
    to_upstream: bool = True,
) -> list[Stream]:
    """Streams whose clients leave after ``read_s``; the upstream closes ``latency`` later (None: never)."""
    streams = []
    for index, latency in enumerate(latencies_s):
        start = start_s + index * every_s
        leave = start + read_s
        read = int(read_s * tokens_per_s)
        sent = read + (0 if latency is None else int(round(latency * tokens_per_s)))
        streams.append(
            Stream(
                stream_id=f"s-{target}-{index:04d}",
                target=target,
                start_s=start,
                client_end_s=leave,
                upstream_end_s=None if latency is None else leave + latency,
                tokens_read=read,
                tokens_sent=sent,
                behaviour=behaviour,
                to_upstream=to_upstream,
            )
        )
    return streams


@dataclass(slots=True)
class CraftedRun:
    """What to write; ``write`` makes the folder."""

    phases: Sequence[tuple[str, float, float]] = (("warm-up", 0.0, 10.0), ("load", 10.0, 40.0), ("drain", 40.0, 50.0))
    rss: dict[str, Series] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    streams: list[Stream] = field(default_factory=list)
    interval_s: float = 0.25
    status: str = "complete"
    scenario: str = "crafted"
    kernel_established: dict[str, Callable[[float], int]] = field(default_factory=dict)
    """Per target, the ESTABLISHED upstream connections at t (connections.csv)."""
    traced: dict[str, Series] = field(default_factory=dict)
    """Per target under the tracemalloc probe, its traced memory at t (samples.csv traced_bytes)."""
    fds: dict[str, Series] = field(default_factory=dict)
    """Per target, its open descriptors at t (samples.csv num_fds)."""
    events: list[tuple[float, str, str, str]] = field(default_factory=list)
    """Extra events.csv rows: (seconds since the start, kind, name, detail), e.g. a target_died."""

    @property
    def end_s(self) -> float:
        return max(end for _, _, end in self.phases)

    def write(self, root: Path) -> Path:
        folder = RunFolder.create(root, self.scenario)
        names = list(dict.fromkeys([*self.roles, *self.rss]))
        folder.update_meta(
            targets=[
                {"name": name, "role": self.roles.get(name, "relay"), "url": None, "pid": 1000 + i}
                for i, name in enumerate(names)
            ],
            flags={"scenario_scale": 1.0},
        )
        for name, start, end in self.phases:
            folder.event("phase_start", name, t=T0 + start)
            folder.event("phase_end", name, t=T0 + end)
        for at, kind, name, detail in self.events:
            folder.event(kind, name, detail, t=T0 + at)
        ticks = np.arange(0.0, self.end_s + 1e-9, self.interval_s)
        folder.table("samples").extend(
            {
                "t": T0 + float(t),
                "target": name,
                "pid": 1000 + i,
                "processes": 1,
                "rss_bytes": int(series(float(t))),
                **({"traced_bytes": int(self.traced[name](float(t)))} if name in self.traced else {}),
                **({"num_fds": int(self.fds[name](float(t)))} if name in self.fds else {}),
            }
            for t in ticks
            for i, (name, series) in enumerate(self.rss.items())
        )
        folder.table("connections").extend(
            {"t": T0 + float(t), "target": name, "established": count(float(t)), "total": count(float(t))}
            for t in ticks
            for name, count in self.kernel_established.items()
        )
        folder.table("clients").extend(_client_row(stream) for stream in self.streams)
        folder.table("upstream_streams").extend(_upstream_row(stream) for stream in self.streams)
        folder.finish(self.status)
        return folder.path


def _client_row(stream: Stream) -> dict[str, object]:
    return {
        "stream_id": stream.stream_id,
        "target": stream.target,
        "behaviour": stream.behaviour,
        "worker": "local",
        "start": T0 + stream.start_s,
        "first_byte": T0 + stream.start_s + 0.01,
        "first_token": T0 + stream.start_s + 0.02,
        "end": T0 + stream.client_end_s,
        "outcome": stream.outcome,
        "leave_how": "reset" if stream.outcome == "left" else "",
        "leave_when": "after_tokens" if stream.outcome == "left" else "",
        "status": 200,
        "tokens": stream.tokens_read,
        "bytes": stream.tokens_read * 100,
    }


def _upstream_row(stream: Stream) -> dict[str, object]:
    end = None if stream.upstream_end_s is None else T0 + stream.upstream_end_s
    return {
        "target": stream.target,  # each target's own upstream
        "id": stream.stream_id if stream.to_upstream else f"u-{stream.stream_id}",
        "id_channel": "header" if stream.to_upstream else "none",
        "route": "/v1/chat/completions",
        "start": T0 + stream.start_s + 0.005,
        "first_token": T0 + stream.start_s + 0.015,
        "end": end,
        "tokens_sent": stream.tokens_sent,
        "bytes_sent": stream.tokens_sent * 64,
        "end_reason": "" if end is None else "peer_closed",
    }


def slow_readers(
    target: str, count: int, start_s: float = 10.0, end_s: float = 40.0, *, tokens_sent: int = 1
) -> Iterable[Stream]:
    """Stalled readers connected through the load, leaving at its end (the upstream closing with them); the
    upstream sent each ``tokens_sent`` (1: the relay pulled no more than they read; more: it ran ahead)."""
    for index in range(count):
        yield Stream(
            stream_id=f"slow-{target}-{index}",
            target=target,
            start_s=start_s,
            client_end_s=end_s,
            upstream_end_s=end_s + 0.01,
            tokens_read=1,
            tokens_sent=tokens_sent,
            behaviour="stalled",
        )
