"""The tracemalloc probe: runs a Python program in this process, traced, with a control endpoint on the side.

    python -m harness.capture.probe [--nframe N] -- -m targets.eager --port 0 ...
    python -m harness.capture.probe [--nframe N] -- python path/to/server.py --flag ...

tracemalloc starts before the program is imported, then the program runs in the main thread through ``runpy``
with ``sys.argv`` as it expects. A control endpoint answers in a daemon thread (so it answers while the
program's event loop is busy), bound to 127.0.0.1 on a free port and guarded by the token the harness puts in
``STREAM_HARNESS_PROBE_TOKEN`` (requests without it get 403). Its port is written to the file named by
``STREAM_HARNESS_PROBE_PORT_FILE`` and printed on stderr. Routes (all need ``Authorization: Bearer TOKEN``):

    GET  /traced      {"current_bytes", "peak_bytes", "asyncio_tasks", ...}: tracemalloc.get_traced_memory() and
                      the asyncio tasks alive in the process (any loop), both cheap
    POST /snapshot    {"snapshot_path", "census_path"}: dump a tracemalloc snapshot, then take a census of live
                      objects (by type, what containers hold, and who holds the biggest containers) as JSON;
                      both paths must lie inside ``$STREAM_HARNESS_PROBE_SNAPSHOT_DIR`` (the harness's
                      --run-dir; the probe's working folder when unset): anything else is 400
    POST /reset-peak  tracemalloc.reset_peak()

Started by hand without a token, the probe makes one up and prints it with its port.

``--nframe 0`` counts only: tracemalloc stays off (the program runs at full speed), ``/traced`` answers
``current_bytes`` and ``peak_bytes`` null and ``tracing`` false but still counts asyncio tasks, and ``/snapshot``
answers 409. The launcher runs every launched Python command under it so (harness/launch/launched.py): the churn
check counts a server's tasks with no flag set.

A snapshot and its census stall the program for tens to hundreds of milliseconds (they hold the GIL): take them
at phase boundaries, never on a hot path. The analysis runs out of process (harness.analyse.growth).

The program is parsed and run by capture/program.py, the census taken by capture/census.py.
"""

from __future__ import annotations

import argparse
import hmac
import http.server
import json
import os
import secrets
import sys
import threading
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.capture.census import take_census
from harness.capture.program import check_module, parse_program, run_program
from harness.errors import UsageError

__all__ = [
    "NFRAME_ENV",
    "PORT_FILE_ENV",
    "SNAPSHOT_DIR_ENV",
    "TOKEN_ENV",
    "add_probe_arguments",
    "asyncio_tasks",
    "main",
    "run",
    "run_probe",
]

TOKEN_ENV = "STREAM_HARNESS_PROBE_TOKEN"
PORT_FILE_ENV = "STREAM_HARNESS_PROBE_PORT_FILE"
NFRAME_ENV = "STREAM_HARNESS_PROBE_NFRAME"
"""The launcher's record of the probe's ``--nframe`` (0: counts only), for the samplers."""
SNAPSHOT_DIR_ENV = "STREAM_HARNESS_PROBE_SNAPSHOT_DIR"
"""The one folder POST /snapshot may write into (the harness gives its --run-dir); default: cwd."""


# -- control endpoint ---------------------------------------------------------------------------------------------
def asyncio_tasks() -> int | None:
    """Tasks not yet done in the process, of every event loop, read from another thread without touching the loops.

    asyncio keeps every task it creates in a WeakSet (``asyncio.tasks._all_tasks``; 3.12 adds ``_eager_tasks``)
    until nothing refers to it: a task kept per disconnected client stays in it, pending. Copying a WeakSet while
    the loop's thread adds to it can fail (the set changed size): the copy is retried. None when the program never
    imported asyncio.
    """
    tasks = sys.modules.get("asyncio.tasks")
    if tasks is None:
        return None
    groups = [getattr(tasks, name, None) for name in ("_all_tasks", "_scheduled_tasks", "_eager_tasks")]
    count = 0
    for group in groups:
        if group is None:
            continue
        for _ in range(5):
            try:
                members = list(group)
                break
            except RuntimeError:
                continue
        else:
            return None
        count += sum(1 for task in members if not task.done())
    return count


def _snapshot(snapshot_path: Path, census_path: Path | None) -> dict[str, Any]:
    started = time.perf_counter()
    current, peak = tracemalloc.get_traced_memory()
    # Unfiltered: Snapshot.filter_traces is a Python loop (about 1 s for 80,000 traces) and would stall the
    # program for nothing; harness.analyse.growth drops the probe's and tracemalloc's own frames out of process.
    snapshot = tracemalloc.take_snapshot()
    snapshot_path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.dump(str(snapshot_path))
    traces = len(snapshot.traces)
    del snapshot
    snapshot_s = time.perf_counter() - started
    result: dict[str, Any] = {
        "snapshot_path": str(snapshot_path),
        "traces": traces,
        "current_bytes": current,
        "peak_bytes": peak,
        "snapshot_s": round(snapshot_s, 4),
    }
    if census_path is not None:
        census = take_census()
        census.update(traced_current_bytes=current, traced_peak_bytes=peak)
        aside = census_path.with_name(census_path.name + ".tmp")
        aside.write_text(json.dumps(census, indent=1) + "\n")
        aside.replace(census_path)
        result.update(census_path=str(census_path), census_s=census["took_s"])
    result["took_s"] = round(time.perf_counter() - started, 4)
    return result


def _inside(text: object, root: Path, what: str, *, optional: bool = False) -> Path | str | None:
    """``text`` as a path inside ``root`` (after resolving ``..`` and symlinks), else the one-line reason."""
    if text is None and optional:
        return None
    if not isinstance(text, str) or not Path(text).is_absolute():
        return f"{what} must be an absolute path{' or null' if optional else ''}, got {text!r}"
    path = Path(text).resolve()
    if not path.is_relative_to(root):
        return f"{what} must lie inside {str(root)!r} (${SNAPSHOT_DIR_ENV}), got {text!r}"
    return path


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "stream-harness-probe"
    token = ""
    snapshot_root = Path.cwd()
    lock = threading.Lock()
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        """Quiet: the program's own output stays readable."""

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorised(self) -> bool:
        given = self.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return True
        self._answer(403, {"error": "missing or wrong token (Authorization: Bearer $" + TOKEN_ENV + ")"})
        return False

    def do_GET(self) -> None:
        if not self._authorised():
            return
        if self.path == "/traced":
            tracing = tracemalloc.is_tracing()
            current, peak = tracemalloc.get_traced_memory() if tracing else (None, None)
            self._answer(
                200,
                {
                    "current_bytes": current,
                    "peak_bytes": peak,
                    "asyncio_tasks": asyncio_tasks(),
                    "nframe": tracemalloc.get_traceback_limit() if tracing else 0,
                    "tracing": tracing,
                    "pid": os.getpid(),
                    "t": time.time(),
                },
            )
            return
        self._answer(404, {"error": f"no route GET {self.path}; expected /traced"})

    def do_POST(self) -> None:
        if not self._authorised():
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            request = json.loads(self.rfile.read(length) or b"{}") if 0 <= length <= 65536 else None
        except ValueError:
            request = None
        if not isinstance(request, dict):
            self._answer(400, {"error": "expected a JSON object body of at most 64 KiB"})
            return
        if self.path == "/reset-peak":
            tracemalloc.reset_peak()
            self._answer(200, {"current_bytes": tracemalloc.get_traced_memory()[0]})
        elif self.path == "/snapshot" and not tracemalloc.is_tracing():
            self._answer(409, {"error": "tracemalloc is off (the probe counts only, --nframe 0): no snapshot"})
        elif self.path == "/snapshot":
            snapshot_path = _inside(request.get("snapshot_path"), self.snapshot_root, "snapshot_path")
            census_path = _inside(request.get("census_path"), self.snapshot_root, "census_path", optional=True)
            for checked in (snapshot_path, census_path):
                if isinstance(checked, str):
                    self._answer(400, {"error": checked})
                    return
            assert isinstance(snapshot_path, Path)
            try:
                with self.lock:
                    result = _snapshot(snapshot_path, census_path if isinstance(census_path, Path) else None)
            except OSError as error:
                self._answer(500, {"error": f"cannot write {error.filename!r}: {error.strerror}"})
                return
            self._answer(200, result)
        else:
            self._answer(404, {"error": f"no route POST {self.path}; expected /snapshot or /reset-peak"})


def _start_endpoint(token: str) -> int:
    root = Path(os.environ.get(SNAPSHOT_DIR_ENV) or Path.cwd()).resolve()
    handler = type("Handler", (_Handler,), {"token": token, "snapshot_root": root})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="harness-probe", daemon=True)
    thread.start()
    return int(server.server_address[1])


def _announce(port: int, shown_token: str) -> None:
    port_file = os.environ.get(PORT_FILE_ENV)
    if port_file:
        aside = Path(port_file + ".tmp")
        aside.write_text(f"{port}\n")
        aside.replace(port_file)
    # Not "listening on": the launcher reads that phrase as the target's own URL.
    token = f" token={shown_token}" if shown_token else ""
    sys.stderr.write(f"probe control endpoint at http://127.0.0.1:{port} pid={os.getpid()}{token}\n")
    sys.stderr.flush()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness probe",
        description="Run a Python program under tracemalloc with a token-guarded control endpoint on 127.0.0.1.",
    )
    add_probe_arguments(parser)
    return parser


def add_probe_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``harness probe`` (shared with harness.cli)."""
    parser.add_argument(
        "--nframe",
        type=_nframe,
        default=1,
        metavar="N",
        help="frames kept per allocation traceback; more costs more throughput; 0: tracemalloc off, the probe only "
        "counts asyncio tasks (default: 1)",
    )
    parser.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        help="the program after '--': -m MODULE ..., path/to/script.py ..., or python followed by either",
    )


def _nframe(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 0 <= value <= 1000 or not text.strip().lstrip("+").isdigit():
        raise argparse.ArgumentTypeError(f"--nframe must be a whole number from 0 to 1000, but got {text!r}")
    return value


def run(nframe: int, command: Sequence[str]) -> None:
    """Start the endpoint and tracemalloc (none with ``nframe`` 0), then run ``command`` here; returns when the
    program does."""
    words = list(command)
    command = words[1:] if words[:1] == ["--"] else words
    program = parse_program(command)
    token = os.environ.get(TOKEN_ENV, "")
    shown_token = ""
    if not token:  # started by hand: make one up and tell the person who started it
        token = shown_token = secrets.token_urlsafe(16)
    port = _start_endpoint(token)  # before tracing: the endpoint's own imports and thread stay out of the traces
    if nframe:
        tracemalloc.start(nframe)
    if program.kind == "module":
        check_module(program.target, command)
    _announce(port, shown_token)
    run_program(program)


def run_probe(args: argparse.Namespace) -> int:
    """``harness probe``: run the program; UsageError if it is not a Python program."""
    run(args.nframe, args.command)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        run(args.nframe, args.command)
    except UsageError as error:
        sys.stderr.write(f"harness probe: error: {error}\n")
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
