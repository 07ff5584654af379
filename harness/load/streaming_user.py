"""The streaming Locust user: each task is one :class:`~harness.load.stream.Stream`.

Each stream gets a new stream id (sent as ``X-Request-ID``, in the body's ``user`` field, or as ``?user=`` on
``GET /v1/stream``), a raw socket with a small receive buffer, reads as its :class:`Behaviour` says, and hands one
:class:`ClientRecord` to the listeners of :data:`stream_ended` when it ends (the plugin writes them to the run
folder). Its Locust statistics are described in :mod:`harness.load.stream_stats`.

The parts: ``behaviour`` (how a stream is read and left), ``targets`` (what it streams from, which user gets which),
``stream_settings`` (what Locust's options say), ``request`` (the opening request), ``stream`` (one stream's read
loop), ``decoders`` (tokens per API), ``stream_stats`` (Locust statistics), ``records`` (what is recorded).
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import gevent
from locust import User, constant, task

from harness.load.behaviour import Api, Behaviour, LeaveHow, LeaveWhen, ReadMode
from harness.load.records import ClientRecord, record_rows, stream_ended
from harness.load.stream import Stream
from harness.load.stream_settings import (
    DEFAULT_READ_PACE,
    MIN_RCVBUF_BYTES,
    StreamSettings,
    settings_from_options,
    target_request,
)
from harness.load.targets import Target, format_targets, parse_targets, targets_of_user

__all__ = [
    "DEFAULT_READ_PACE",
    "MIN_RCVBUF_BYTES",
    "Api",
    "Behaviour",
    "ClientRecord",
    "LeaveHow",
    "LeaveWhen",
    "ReadMode",
    "Stream",
    "StreamSettings",
    "StreamingUser",
    "Target",
    "format_targets",
    "parse_targets",
    "record_rows",
    "settings_from_options",
    "stream_ended",
]

_user_counters: dict[type, itertools.count[int]] = {}
STOP_TIMEOUT_S = 5.0
"""How long a stopped user waits for its round's streams to record themselves and close."""


class StreamingUser(User):
    """A Locust user whose every task is one round: one stream to every target at once (a greenlet each), read and
    left as :attr:`behaviour` says; the next round starts when all of them have ended (and the wait time passed).

    Lockstep, so every target gets the same users with the same behaviours at the same times, rare behaviours
    too, whatever each target's speed (:func:`~harness.load.targets.targets_of_user`). A user Locust stops mid-round
    (a phase ended) stops every stream of the round, and each records itself as left (``user_stopped``).
    """

    abstract = True
    behaviour: ClassVar[Behaviour] = Behaviour()
    wait_time = constant(0.5)
    model: ClassVar[str] = "stream-harness"

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        counter = _user_counters.setdefault(type(self), itertools.count())
        index = next(counter) + int(getattr(environment.runner, "worker_index", 0) or 0)
        targets, pace, rcvbuf, api, upstream = settings_from_options(environment)
        behaviour = self.behaviour
        worker = "local"
        runner = environment.runner
        if runner is not None and type(runner).__name__ == "WorkerRunner":
            worker = str(runner.client_id)
        self.settings_per_target: tuple[StreamSettings, ...] = ()
        for target in targets_of_user(targets, index):
            request = target_request(environment, target.name)
            self.settings_per_target += (
                StreamSettings(
                    target=target,
                    pace=pace,
                    rcvbuf_bytes=rcvbuf,
                    api=(request.api if request is not None else None) or behaviour.api or api,
                    worker=worker,
                    model=self.model,
                    upstream=upstream,
                    request=request,
                ),
            )

    @task
    def stream(self) -> None:
        """One round: a stream to every target at once, until all have ended."""
        fire = self.environment.events.request.fire
        if len(self.settings_per_target) == 1:
            Stream(self.behaviour, self.settings_per_target[0], fire).run()
            return
        streams = [gevent.spawn(Stream(self.behaviour, settings, fire).run) for settings in self.settings_per_target]
        try:
            gevent.joinall(streams)
        except gevent.GreenletExit:
            # Stopped mid-round: each stream records itself as left (user_stopped) as it dies.
            gevent.killall(streams, block=True, timeout=STOP_TIMEOUT_S)
            raise
        failed = next((g.exception for g in streams if g.exception is not None), None)
        if failed is not None:
            raise failed
