"""Client records on their way to the run folder: buffered, flushed every half second, and on workers sent to the
master with Locust's message API."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent
from locust.runners import MasterRunner

from harness.load.streaming_user import ClientRecord
from harness.runfolder import RunFolder

__all__ = ["FLUSH_INTERVAL_S", "RECORDS_MESSAGE", "RecordQueue"]

log = logging.getLogger("harness")

RECORDS_MESSAGE = "harness_client_records"
FLUSH_INTERVAL_S = 0.5


class RecordQueue:
    """The client records of one Locust process, on their way to clients.csv (master/local) or the master."""

    def __init__(self, runner: Any, *, is_worker: bool, folder: Callable[[], RunFolder | None]) -> None:
        self.runner = runner
        self.is_worker = is_worker
        self._folder = folder
        """The run folder to write to (None: nowhere, e.g. finished)."""
        self._pending: list[dict[str, Any]] = []
        if isinstance(runner, MasterRunner):
            runner.register_message(RECORDS_MESSAGE, self._on_worker_records)

    def add(self, record: ClientRecord) -> None:
        self._pending.append(record.row())

    def flush(self) -> None:
        rows, self._pending = self._pending, []
        if not rows:
            return
        if self.is_worker:
            try:
                self.runner.send_message(RECORDS_MESSAGE, rows)
            except Exception as error:  # the master may be gone at the very end
                log.warning("could not send %d client records to the master: %s", len(rows), error)
            return
        self._write(rows)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        folder = self._folder()
        if folder is not None:
            folder.table("clients").extend(rows)

    def _on_worker_records(self, environment: Any, msg: Any, **_: Any) -> None:
        self._write(msg.data)

    def loop(self) -> None:
        """Flush every FLUSH_INTERVAL_S (a greenlet)."""
        while True:
            gevent.sleep(FLUSH_INTERVAL_S)
            self.flush()
