"""The servers the users stream from: :class:`Target`, the ``--target-url`` syntax, and which user streams from
which target."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.errors import UsageError
from harness.load.stream_client import split_url

__all__ = ["Target", "targets_of_user", "format_targets", "parse_targets"]


@dataclass(frozen=True, slots=True)
class Target:
    """A server the users stream from."""

    name: str
    url: str
    host: str = field(init=False)
    port: int = field(init=False)
    base_path: str = field(init=False)

    def __post_init__(self) -> None:
        if not self.name or not all(ch.isalnum() or ch in "-_." for ch in self.name):
            raise UsageError(f"a target name must be letters, digits, '-', '_' or '.', but got {self.name!r}")
        host, port, base = split_url(self.url)
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "base_path", base)


def parse_targets(text: str, *, what: str = "--target-url") -> tuple[Target, ...]:
    """``"mine=http://127.0.0.1:8080,theirs=http://[::1]:9000"`` -> targets; names must be unique."""
    targets: list[Target] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, equals, url = item.partition("=")
        if not equals:
            raise UsageError(f"{what} takes NAME=http://HOST:PORT[,NAME=URL...], but got {item!r}")
        try:
            targets.append(Target(name.strip(), url.strip()))
        except UsageError as error:
            raise UsageError(f"{what} entry {item!r}: {error}") from None
    if not targets:
        raise UsageError(f"{what} takes NAME=http://HOST:PORT[,NAME=URL...], but got {text!r}")
    names = [target.name for target in targets]
    if len(set(names)) != len(names):
        raise UsageError(f"{what} names a target twice: {text!r}")
    return tuple(targets)


def format_targets(targets: tuple[Target, ...]) -> str:
    """The inverse of :func:`parse_targets` (how targets travel to workers in Locust's parsed options)."""
    return ",".join(f"{target.name}={target.url}" for target in targets)


def targets_of_user(targets: Sequence[Target], user_index: int) -> tuple[Target, ...]:
    """The targets of the ``user_index``-th user of a class (counted in this process, offset by the worker's index):
    every one of them, rotated by the index so that no target is always the first one connected to.

    Fair load by construction: each round of a user opens one stream to every target at once and the next round
    starts when all of them have ended (:class:`~harness.load.streaming_user.StreamingUser`), so every target gets
    the same users, with the same behaviours, at the same times, whatever each target's speed; per behaviour the
    stream counts of two targets differ by at most the rounds cut short by a user stopping before its streams began.
    """
    if not targets:
        return ()
    shift = user_index % len(targets)
    return (*targets[shift:], *targets[:shift])
