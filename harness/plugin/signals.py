"""SIGINT and SIGTERM at any moment of a run: the same orderly stop, then a non-zero exit (128 + the signal).

Locust turns Ctrl-C (SIGINT, a KeyboardInterrupt in its main greenlet) into an orderly stop everywhere, but it
installs its SIGTERM handler only once a headless shape test has finished, so SIGTERM during one (what CI
timeouts and ``docker stop`` send) used to kill the process outright. Here both signals are recorded (an
``interrupted`` event, ``interrupted_by`` in meta.json, the exit code) and, where Locust has no SIGTERM handler
yet (while the targets start, while a headless shape runs), SIGTERM is turned into the KeyboardInterrupt that
Ctrl-C would have raised. Elsewhere Locust's own handler stops the run (gevent runs every handler of a signal).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

import gevent

__all__ = ["Interrupts"]

log = logging.getLogger("harness")


class Interrupts:
    """The signals of one Locust process. ``signum`` is the first one received (None: none)."""

    def __init__(self, on_signal: Callable[[str], None], needs_interrupt: Callable[[], bool]) -> None:
        self.signum: int | None = None
        self._on_signal = on_signal
        self._needs_interrupt = needs_interrupt
        self._main = gevent.getcurrent()
        """Locust's main greenlet (init fires there); where Ctrl-C's KeyboardInterrupt lands."""

    @property
    def name(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum is not None else None

    @property
    def exit_code(self) -> int | None:
        return 128 + self.signum if self.signum is not None else None

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._sigint)
        gevent.signal_handler(signal.SIGTERM, self._sigterm)

    def _record(self, signum: int) -> bool:
        """Record the first signal; True if this is it."""
        if self.signum is not None:
            return False
        self.signum = signum
        name = signal.Signals(signum).name
        log.warning("got %s: stopping the run (the run folder is kept, marked interrupted)", name)
        self._on_signal(name)
        return True

    def _sigint(self, signum: int, frame: FrameType | None) -> Any:
        if not self._record(signum):
            # A second Ctrl-C would cut the stop short and lose the run: ignored (SIGKILL still ends Locust, and
            # then the watchdog ends what it started).
            log.warning("already stopping: the run folder is being finished (SIGKILL forces the exit)")
            return
        # Ctrl-C's KeyboardInterrupt, delivered to the main greenlet by the loop (raised here, in whatever greenlet
        # runs, gevent would print it as a crash first)
        gevent.kill(self._main, KeyboardInterrupt)

    def _sigterm(self) -> None:
        first = self._record(signal.SIGTERM)
        if first and self._needs_interrupt():
            gevent.kill(self._main, KeyboardInterrupt)
