"""Phased load shapes: a scenario is a list of named phases, each with a duration, a user count and user classes.

A locustfile subclasses :class:`PhasedShape` and sets ``phases``; the shape runs them in order and then ends the
test by itself (``--headless`` needs no ``--run-time``). ``--scenario-scale`` multiplies every duration (0.2 runs
a 50 s scenario in about 10 s), except where a phase sets ``min_s``. Listeners of :data:`phase_started` (the
plugin) learn of each boundary.

Locust asks a shape for its numbers about once a second, so a boundary falls up to a second late; a phase lasts at
least 1 s whatever the scale. Locust keeps running users when only their classes change (its dispatcher compares
counts), so when a phase uses other user classes than the one before, its first tick stops every user and the
next one starts the new ones: the change costs one tick, and no user of the old phase outlives it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from locust import LoadTestShape, User
from locust.event import EventHook

from harness.errors import UsageError
from harness.load.upstream_behaviour import UpstreamBehaviour

__all__ = ["Phase", "PhasedShape", "phase_started", "shape_finished"]

MIN_PHASE_S = 1.0
"""Locust ticks a shape once a second: a shorter phase could be skipped."""

phase_started = EventHook()  # type: ignore[no-untyped-call]
"""Fired with ``name``, ``index``, ``at`` (epoch s), ``duration_s`` (scaled) and ``upstream`` (the phase's
:class:`UpstreamBehaviour` or None) when a phase begins."""
shape_finished = EventHook()  # type: ignore[no-untyped-call]
"""Fired with ``at`` (epoch s) when the last phase has ended."""


@dataclass(frozen=True, slots=True)
class Phase:
    """One stretch of a scenario."""

    name: str
    duration_s: float
    users: int = 0
    """Total users during the phase (spread over ``user_classes`` by their ``weight``)."""
    spawn_rate: float = 100.0
    """Users started or stopped per second when the phase begins."""
    user_classes: tuple[type[User], ...] = ()
    """Empty = keep the classes of the phase before (or all the locustfile's, at the start)."""
    upstream: UpstreamBehaviour | None = None
    """The fake upstream's defaults during the phase; None = the stack flags' values."""
    min_s: float = 0.0
    """The phase lasts at least this long whatever ``--scenario-scale``: a window a check needs (a churn's rounds,
    stalled clients staying long enough to tell a send timeout from holding them forever)."""

    def __post_init__(self) -> None:
        if not self.name:
            raise UsageError("a phase needs a name")
        if not self.duration_s > 0:
            raise UsageError(f"phase {self.name!r}: duration_s must be > 0, but got {self.duration_s!r}")
        if self.users < 0:
            raise UsageError(f"phase {self.name!r}: users must be >= 0, but got {self.users!r}")
        if not self.spawn_rate > 0:
            raise UsageError(f"phase {self.name!r}: spawn_rate must be > 0, but got {self.spawn_rate!r}")
        if not self.min_s >= 0:
            raise UsageError(f"phase {self.name!r}: min_s must be >= 0, but got {self.min_s!r}")


@dataclass(frozen=True, slots=True)
class ScheduledPhase:
    phase: Phase
    index: int
    start_s: float
    end_s: float


def schedule(phases: Sequence[Phase], scale: float) -> list[ScheduledPhase]:
    """Each phase with its start and end (seconds from the start of the test) at ``scale``."""
    if not scale > 0:
        raise UsageError(f"--scenario-scale must be > 0, but got {scale!r}")
    planned: list[ScheduledPhase] = []
    at = 0.0
    for index, phase in enumerate(phases):
        length = max(MIN_PHASE_S, phase.min_s, phase.duration_s * scale)
        planned.append(ScheduledPhase(phase, index, at, at + length))
        at += length
    return planned


class PhasedShape(LoadTestShape):
    """Runs ``phases`` in order, then ends the test."""

    abstract = True
    phases: ClassVar[tuple[Phase, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names = [phase.name for phase in cls.phases]
        if len(set(names)) != len(names):
            raise UsageError(f"{cls.__name__}: phase names must be unique, but got {names}")
        classes: tuple[type[User], ...] = ()
        for phase in cls.phases:
            classes = phase.user_classes or classes
            if phase.users and not classes:
                raise UsageError(
                    f"{cls.__name__}: phase {phase.name!r} has users but no user_classes (nor a phase before it)"
                )

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._reset()

    def _reset(self) -> None:
        self._current = -1
        self._classes: tuple[type[User], ...] = ()
        self.finished = False

    def reset_time(self) -> None:
        super().reset_time()  # type: ignore[no-untyped-call]
        self._reset()

    @property
    def scale(self) -> float:
        runner = self.runner
        options = runner.environment.parsed_options if runner is not None else None
        return float(getattr(options, "scenario_scale", 1.0) or 1.0)

    def planned(self) -> list[ScheduledPhase]:
        return schedule(self.phases, self.scale)

    def total_s(self) -> float:
        planned = self.planned()
        return planned[-1].end_s if planned else 0.0

    def tick(self) -> tuple[int, float] | tuple[int, float, list[type[User]] | None] | None:
        run_s = self.get_run_time()  # type: ignore[no-untyped-call]
        current = next((item for item in self.planned() if run_s < item.end_s), None)
        if current is None:
            if not self.finished:
                self.finished = True
                shape_finished.fire(at=time.time())  # type: ignore[no-untyped-call]
            return None
        phase = current.phase
        if current.index != self._current:
            self._current = current.index
            phase_started.fire(  # type: ignore[no-untyped-call]
                name=phase.name,
                index=current.index,
                at=time.time(),
                duration_s=current.end_s - current.start_s,
                upstream=phase.upstream,
            )
            classes = phase.user_classes or self._classes
            switching = bool(self._classes) and classes != self._classes and self.get_current_user_count() > 0  # type: ignore[no-untyped-call]
            self._classes = classes
            if switching:
                return 0, 100.0, None
        if not phase.users:
            return 0, phase.spawn_rate, None
        return phase.users, phase.spawn_rate, list(self._classes)
