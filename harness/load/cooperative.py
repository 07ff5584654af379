"""Waiting for a gevent socket to become readable for the least CPU: the read loop of thousands of slow streams.

gevent's ``socket.recv`` tries the read first (an ``EWOULDBLOCK`` exception on every wake-up of a slow stream, raised
and caught in Python), then waits under a new ``Timeout`` object (a Python object, a timer started and stopped per
read). :class:`ReadableWait` instead waits first and reads once: per wake-up one io watcher start and stop (C), one
switch to the hub and back, and no timer operation at all. The deadline is kept lazily: one timer per connection
that fires no later than the deadline asks; when it fires early (the stream brought data since it was armed) it is
armed again for the deadline now due, so a stream that reads every second under a 30 s deadline re-arms it once
every 30 s, not once a read. Deadlines are on ``time.monotonic``: a timer that libev fires early (its clock is
cached per loop iteration) is armed again for what is left.
"""

from __future__ import annotations

import time
from typing import Any

from gevent import get_hub, getcurrent

__all__ = ["ReadableWait"]

_READABLE = object()
_TIMER = object()
_READ = 1  # libev's EV_READ


class ReadableWait:
    """Waits until ``fd`` is readable or its deadline passes, in the calling greenlet."""

    __slots__ = ("_deadline", "_due", "_hub", "_io", "_loop", "_timer", "_waiting")

    def __init__(self, fd: int) -> None:
        self._hub: Any = get_hub()
        self._loop: Any = self._hub.loop
        self._io: Any = self._loop.io(fd, _READ)
        self._timer: Any = None
        self._due: float | None = None
        """When the armed timer fires (loop clock); None when no timer is armed."""
        self._deadline = 0.0
        self._waiting: Any = None

    def wait(self, timeout_s: float | None) -> None:
        """Return once the socket is readable (data, EOF or an error to read); TimeoutError after ``timeout_s``."""
        if timeout_s is not None:
            deadline = time.monotonic() + timeout_s
            self._deadline = deadline
            due = self._due
            if due is None or due > deadline:
                self._arm(timeout_s, deadline)
        current = getcurrent()
        self._waiting = current
        self._io.start(current.switch, _READABLE)
        try:
            while self._hub.switch() is not _READABLE:
                # The timer fired: the deadline passed, or it was armed for an earlier one.
                left = self._deadline - time.monotonic()
                if timeout_s is None:
                    continue
                if left <= 0:
                    raise TimeoutError("no data before the deadline")
                self._arm(left, self._deadline)
        finally:
            self._io.stop()
            self._waiting = None

    def _arm(self, after_s: float, due: float) -> None:
        if self._timer is not None:
            self._timer.close()
        self._timer = self._loop.timer(after_s)
        self._timer.start(self._fired)
        self._due = due

    def _fired(self) -> None:
        self._due = None
        waiting = self._waiting
        if waiting is not None:  # only a greenlet blocked in wait() is woken; otherwise the next wait re-arms
            waiting.switch(_TIMER)

    def close(self) -> None:
        """Stop the watchers."""
        self._io.close()
        if self._timer is not None:
            self._timer.close()
            self._timer = None
        self._due = None
