"""``harness agent``: the samplers next to a server on another host, served over HTTP for a distributed run.

It samples one process (and its children) with the same Sampler as a local run, writes a run folder on its own
host (so nothing is lost if the master never asks), and keeps the recent rows in memory for the master:

    GET /samples?since=T   {"now": epoch s, "run": the agent's run folder name, "cursor": N,
                            "tables": {"samples": [...], "connections": [...], "stats": [...], "events": [...]}}:
                            the rows with t > T (all kept rows without ``since``)
    GET /samples?cursor=N  the rows kept after the answer that returned ``cursor`` N: exact, for a poller
                            (capture/agent_client.py). A tick's rows reach the tables a few ms apart, so ``since``
                            can miss rows whose ``t`` is older than the newest row seen; the cursor cannot.
                            A different ``run`` means the agent restarted: its cursor began again at 0.
    GET /meta              the agent's meta.json (sampler config, connection counting method, host)

Binds 127.0.0.1 unless ``--host`` says otherwise: the rows describe the host's processes, so exposing them is
a choice. The server runs in a background thread (stdlib http.server); the main thread waits for SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from harness.capture.sampling import SampledTarget, Sampler
from harness.errors import UsageError
from harness.runfolder import TABLES, CsvAppender, RunFolder
from harness.units import argparse_type, parse_duration

__all__ = ["AgentServer", "MemoryRunFolder", "add_agent_arguments", "run_agent"]

ROWS_KEPT = 100_000
"""Rows kept in memory per table (about 7 hours of one target at 4 Hz); older ones are only in the run folder."""


class _TeeAppender(CsvAppender):
    """Appends to the CSV file and keeps the rows, as given (numbers stay numbers), for the HTTP answer."""

    def __init__(self, path: Path, columns: Sequence[str], folder: MemoryRunFolder, name: str) -> None:
        super().__init__(path, columns)
        self.folder = folder
        self.name = name

    def extend(self, rows: Iterable[Mapping[str, Any]]) -> None:
        rows = [dict(row) for row in rows]
        super().extend(rows)
        self.folder.keep(self.name, [{column: row.get(column) for column in self.columns} for row in rows])


class MemoryRunFolder(RunFolder):
    """A run folder whose tables also keep their recent rows in memory, each with a sequence number."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.kept: dict[str, deque[tuple[int, dict[str, Any]]]] = {}
        self._cursor = 0
        # Numbering and keeping under one lock: a poller that saw row N has seen every row before it.
        self._kept_lock = threading.Lock()

    def table(self, name: str, columns: Sequence[str] | None = None) -> CsvAppender:
        if name not in self._tables:
            fixed = columns if columns is not None else TABLES.get(name)
            if fixed is None:
                raise ValueError(f"table {name!r} has no fixed columns; pass them")
            with self._kept_lock:
                self.kept.setdefault(name, deque(maxlen=ROWS_KEPT))
            self._tables[name] = _TeeAppender(self.file(name), fixed, self, name)
        return self._tables[name]

    def keep(self, name: str, rows: Sequence[dict[str, Any]]) -> None:
        """Number ``rows`` and keep them for the HTTP answer."""
        with self._kept_lock:
            kept = self.kept.setdefault(name, deque(maxlen=ROWS_KEPT))
            for row in rows:
                self._cursor += 1
                kept.append((self._cursor, row))

    def rows_after(
        self, *, since: float | None = None, cursor: int | None = None
    ) -> tuple[dict[str, list[dict[str, Any]]], int]:
        """The kept rows with ``t`` > ``since`` and sequence number > ``cursor``, per table; and the last number."""
        with self._kept_lock:
            copies = {name: list(kept) for name, kept in self.kept.items()}
            last = self._cursor
        answer = {}
        for name, rows in copies.items():
            answer[name] = [
                row
                for number, row in rows
                if (cursor is None or number > cursor) and (since is None or (row.get("t") or 0) > since)
            ]
        return answer, last

    def rows_since(self, since: float | None) -> dict[str, list[dict[str, Any]]]:
        """Every kept row with ``t`` > ``since``, per table."""
        return self.rows_after(since=since)[0]


class AgentServer:
    """The agent's HTTP server in a background thread."""

    def __init__(self, folder: MemoryRunFolder, host: str, port: int) -> None:
        self.folder = folder
        handler = _handler_for(folder)
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as error:
            raise UsageError(f"harness agent cannot listen on {host}:{port}: {error.strerror}") from error
        self.httpd.daemon_threads = True
        bound_host, bound_port = str(self.httpd.server_address[0]), int(self.httpd.server_address[1])
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="harness-agent-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


def _handler_for(folder: MemoryRunFolder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            parts = urlsplit(self.path)
            if parts.path == "/samples":
                query = parse_qs(parts.query)
                since: float | None = None
                cursor: int | None = None
                if "since" in query:
                    try:
                        since = float(query["since"][0])
                    except ValueError:
                        self._answer(400, {"error": f"since must be epoch seconds, but got {query['since'][0]!r}"})
                        return
                if "cursor" in query:
                    try:
                        cursor = int(query["cursor"][0])
                    except ValueError:
                        cursor = -1
                    if cursor < 0:
                        self._answer(
                            400,
                            {"error": f"cursor must be a whole number >= 0, but got {query['cursor'][0]!r}"},
                        )
                        return
                tables, last = folder.rows_after(since=since, cursor=cursor)
                # "now" is read last: every row served was kept before it, so a poller can bound clock skew.
                self._answer(200, {"now": time.time(), "run": folder.path.name, "cursor": last, "tables": tables})
            elif parts.path == "/meta":
                self._answer(200, folder.read_meta())
            else:
                routes = "/samples?since=T, /samples?cursor=N or /meta"
                self._answer(404, {"error": f"no route GET {parts.path}; try {routes}"})

        def _answer(self, status: int, payload: object) -> None:
            body = json.dumps(payload, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
            pass  # one line per poll would drown the agent's own output

    return Handler


def _port(text: str, *, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise UsageError(f"{what} must be a port from 0 to 65535, but got {text!r}")
    return value


def _pid(text: str, *, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"{what} must be a process id >= 1, but got {text!r}")
    return value


def add_agent_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``harness agent``."""
    parser.add_argument("--pid", required=True, type=argparse_type(_pid, "--pid"), help="process to sample")
    parser.add_argument(
        "--upstream-port",
        type=argparse_type(_port, "--upstream-port"),
        help="count the process's TCP connections to this port (default: not counted)",
    )
    parser.add_argument(
        "--port", required=True, type=argparse_type(_port, "--port"), help="port to serve samples on (0: any free)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1)")
    parser.add_argument(
        "--interval",
        type=argparse_type(parse_duration, "--interval"),
        default=0.25,
        help="sampling interval (default: 250ms)",
    )
    parser.add_argument("--name", default="server", help="the target's name in the rows (default: server)")
    parser.add_argument(
        "--stats-url", metavar="URL", help="also poll URL/__harness/stats, when the server has that route"
    )
    parser.add_argument(
        "--out", default="reports", metavar="DIR", help="where the agent's own run folder goes (default: reports)"
    )


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def run_agent(args: argparse.Namespace) -> int:
    """Sample ``args.pid`` and serve the rows until SIGTERM or SIGINT."""
    if args.interval <= 0:
        raise UsageError(f"--interval must be > 0, but got {args.interval!r}")
    created = RunFolder.create(Path(args.out), "agent", {"agent": {"pid": args.pid, "host": args.host}})
    folder = MemoryRunFolder(created.path)
    target = SampledTarget(
        name=args.name,
        role="server",
        url=args.stats_url,
        pid=args.pid,
        upstream_port=args.upstream_port,
        has_stats=args.stats_url is not None,
    )
    server = AgentServer(folder, args.host, args.port)
    sampler = Sampler(folder, [target], interval_s=args.interval)
    previous = {signum: signal.signal(signum, _raise_stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    status = "interrupted"
    try:
        sampler.start()
        server.start()
        folder.update_meta(agent={"pid": args.pid, "url": server.url})
        # The line a launcher waits for; keep its form ("listening on URL").
        sys.stderr.write(f"harness agent listening on {server.url} pid={args.pid} folder={folder.path}\n")
        sys.stderr.flush()
        while True:
            time.sleep(3600)
    except _Stop:
        status = "complete"
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sampler.stop()
        server.stop()
        folder.finish(status)
    return 0
