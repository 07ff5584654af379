"""The harness's side of the tracemalloc probe: how to launch a target under it, and how to talk to it.

``ProbeLaunch`` makes the token and port file and wraps a target's command line in ``python -m harness.capture.probe``;
``ProbeClient`` asks a running probe for its traced memory (cheap) and for snapshots (slow: phase boundaries
only). Plain urllib with short timeouts, so it works unchanged in the gevent-patched Locust process.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from harness.capture.probe import NFRAME_ENV, PORT_FILE_ENV, SNAPSHOT_DIR_ENV, TOKEN_ENV
from harness.errors import TargetError
from harness.launch.process import ChildProcess

__all__ = ["ProbeClient", "ProbeLaunch", "ProbeReading", "SnapshotTaken", "TracedMemory"]


@dataclass(frozen=True, slots=True)
class ProbeLaunch:
    """What one target needs to run under the probe: a token, a file for its port, and a frame depth."""

    token: str
    port_file: Path
    nframe: int = 1
    """0: tracemalloc off, the probe only counts (asyncio tasks)."""
    snapshot_dir: Path | None = None
    """The only folder the probe writes snapshots into (the harness's --run-dir); None: the probe's cwd."""

    @classmethod
    def new(cls, port_file: Path, nframe: int = 1, snapshot_dir: Path | None = None) -> ProbeLaunch:
        """A fresh random token; the probe will write its port to ``port_file``."""
        port_file.unlink(missing_ok=True)  # a stale port from an earlier run must not be read
        return cls(secrets.token_urlsafe(24), port_file, nframe, snapshot_dir)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ProbeLaunch | None:
        """The launch recorded in a child's environment, or None if it does not run under the probe."""
        if TOKEN_ENV not in env or PORT_FILE_ENV not in env:
            return None
        nframe = env.get(NFRAME_ENV, "1")
        return cls(env[TOKEN_ENV], Path(env[PORT_FILE_ENV]), int(nframe) if nframe.isdigit() else 1)

    def argv(self, program_argv: Sequence[str]) -> list[str]:
        """``program_argv`` (``[python, -m, targets.eager, ...]`` or ``[-m, ...]``) run under the probe."""
        return [sys.executable, "-m", "harness.capture.probe", "--nframe", str(self.nframe), "--", *program_argv]

    def env(self) -> dict[str, str]:
        env = {TOKEN_ENV: self.token, PORT_FILE_ENV: str(self.port_file), NFRAME_ENV: str(self.nframe)}
        if self.snapshot_dir is not None:
            env[SNAPSHOT_DIR_ENV] = str(self.snapshot_dir)
        return env


class TracedMemory(NamedTuple):
    """tracemalloc.get_traced_memory() of the target: ``current, peak = client.traced()``."""

    current_bytes: int
    peak_bytes: int


class ProbeReading(NamedTuple):
    """One tick's reading of a probed target: its traced memory (None from a probe that only counts) and its
    asyncio tasks."""

    current_bytes: int | None
    peak_bytes: int | None
    asyncio_tasks: int | None
    """asyncio tasks alive in the target (None: it runs no asyncio)."""


@dataclass(frozen=True, slots=True)
class SnapshotTaken:
    """What the probe wrote, and how long the target stalled for it."""

    snapshot_path: Path
    census_path: Path | None
    traces: int
    current_bytes: int
    peak_bytes: int
    snapshot_s: float
    """Time to take and dump the tracemalloc snapshot."""
    took_s: float
    """Whole request, census included: about how long the target's own threads were held up."""


class ProbeClient:
    """Talks to one probe on 127.0.0.1; every error names the target."""

    def __init__(
        self, port: int, token: str, *, target: str = "target", timeout_s: float = 2.0, tracing: bool = True
    ) -> None:
        self.port = port
        self.token = token
        self.target = target
        self.timeout_s = timeout_s
        self.tracing = tracing
        """False: the probe only counts (``--nframe 0``); no traced memory, no snapshots."""
        self.url = f"http://127.0.0.1:{port}"

    def __repr__(self) -> str:
        return f"<ProbeClient {self.target} {self.url}>"

    @classmethod
    def connect(
        cls, launch: ProbeLaunch, *, target: str = "target", wait_s: float = 10.0, child: ChildProcess | None = None
    ) -> ProbeClient:
        """Wait (up to ``wait_s``) for the probe to write its port, then return a client for it."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                text = launch.port_file.read_text().strip()
            except FileNotFoundError:
                text = ""
            if text:
                try:
                    port = int(text)
                except ValueError:
                    raise TargetError(
                        f"probe of target {target!r}: port file {str(launch.port_file)!r} holds {text!r}, not a port"
                    ) from None
                return cls(port, launch.token, target=target, tracing=launch.nframe > 0)
            if child is not None:
                child.check_alive()
            if time.monotonic() >= deadline:
                raise TargetError(
                    f"probe of target {target!r} wrote no port to {str(launch.port_file)!r} within {wait_s:g} s"
                )
            time.sleep(0.05)

    @classmethod
    def for_child(cls, child: ChildProcess, wait_s: float = 10.0) -> ProbeClient:
        """The probe a launched target runs under (started by ``start_bundled_stack`` with profiling on)."""
        launch = ProbeLaunch.from_env(child.spec.env)
        if launch is None:
            raise TargetError(f"target {child.name!r} does not run under the probe (turn profiling on to profile it)")
        return cls.connect(launch, target=child.name, wait_s=wait_s, child=child)

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None, timeout_s: float) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        where = f"probe of target {self.target!r} at {self.url}"
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                payload = json.load(response)
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace").strip()
            raise TargetError(f"{where} answered {method} {path} with {error.code}: {detail}") from error
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise TargetError(f"{where} did not answer {method} {path} within {timeout_s:g} s: {reason}") from error
        except ValueError as error:
            raise TargetError(f"{where} sent a body that is not JSON for {method} {path}") from error
        if not isinstance(payload, dict):
            raise TargetError(f"{where} sent {payload!r} for {method} {path}, expected a JSON object")
        return payload

    def traced(self) -> TracedMemory:
        """Current and peak traced memory: cheap, fine at every sampling tick."""
        reading = self.reading()
        if reading.current_bytes is None or reading.peak_bytes is None:
            raise TargetError(f"probe of target {self.target!r} at {self.url} traces nothing (it only counts)")
        return TracedMemory(reading.current_bytes, reading.peak_bytes)

    def reading(self) -> ProbeReading:
        """Traced memory and asyncio tasks in one cheap request, for every sampling tick."""
        payload = self._call("GET", "/traced", None, self.timeout_s)
        tasks, current, peak = payload.get("asyncio_tasks"), payload["current_bytes"], payload["peak_bytes"]
        return ProbeReading(
            None if current is None else int(current),
            None if peak is None else int(peak),
            None if tasks is None else int(tasks),
        )

    def reset_peak(self) -> None:
        """Restart the peak from the current traced memory (e.g. at a phase boundary)."""
        self._call("POST", "/reset-peak", {}, self.timeout_s)

    def snapshot(self, snapshot_path: Path, census_path: Path | None = None, timeout_s: float = 120.0) -> SnapshotTaken:
        """Dump a tracemalloc snapshot (and a census of live objects, if ``census_path``) from the target.

        Slow: the target stalls for the whole request (tens of ms to seconds, more with more frames and objects).
        """
        body = {
            "snapshot_path": str(snapshot_path.resolve()),
            "census_path": str(census_path.resolve()) if census_path is not None else None,
        }
        payload = self._call("POST", "/snapshot", body, timeout_s)
        return SnapshotTaken(
            snapshot_path=Path(payload["snapshot_path"]),
            census_path=Path(payload["census_path"]) if payload.get("census_path") else None,
            traces=int(payload["traces"]),
            current_bytes=int(payload["current_bytes"]),
            peak_bytes=int(payload["peak_bytes"]),
            snapshot_s=float(payload["snapshot_s"]),
            took_s=float(payload["took_s"]),
        )
