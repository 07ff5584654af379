"""How one stream is read and left: :class:`Behaviour`, the value a scenario's user class declares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.errors import UsageError
from harness.load.apis import Api, parse_api
from harness.load.pacing import Pace
from harness.load.tag import TAG_KEYS

__all__ = ["Api", "Behaviour", "LeaveHow", "LeaveWhen", "ReadMode"]

ReadMode = Literal["fast", "paced", "stalled"]
LeaveWhen = Literal["never", "before_headers", "after_tokens", "after_seconds"]
LeaveHow = Literal["reset", "close"]


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How one stream is read and left."""

    read: ReadMode = "fast"
    pace: str | None = None
    """For ``read="paced"``: ``"2KiB/s"`` or ``"5tok/s"``; None = the ``--read-pace`` flag."""
    leave: LeaveWhen = "never"
    leave_after_tokens: int = 0
    leave_after_s: float = 0.0
    """Seconds after the request was sent."""
    leave_how: LeaveHow = "reset"
    """``reset`` = SO_LINGER 0 (RST); ``close`` = a plain close (FIN, or RST if unread data is left)."""
    api: Api | None = None
    """One of ``harness.load.apis.API_NAMES``; None = the ``--stream-api`` flag."""
    upstream: tuple[tuple[str, str], ...] = ()
    """The stream's own upstream settings, sent in the prompt tag and the query string, e.g. (("tokens", "50"),
    ("rate", "20")); they win over the phase's :class:`~harness.load.upstream_behaviour.UpstreamBehaviour`."""
    read_interval_s: float = 0.25
    """A byte-paced reader reads about this often."""
    idle_timeout_s: float = 30.0
    """A stream that brings nothing for this long is broken."""

    def __post_init__(self) -> None:
        if self.read not in ("fast", "paced", "stalled"):
            raise UsageError(f"Behaviour.read must be 'fast', 'paced' or 'stalled', but got {self.read!r}")
        if self.leave not in ("never", "before_headers", "after_tokens", "after_seconds"):
            raise UsageError(
                "Behaviour.leave must be 'never', 'before_headers', 'after_tokens' or 'after_seconds', "
                f"but got {self.leave!r}"
            )
        if self.leave_how not in ("reset", "close"):
            raise UsageError(f"Behaviour.leave_how must be 'reset' or 'close', but got {self.leave_how!r}")
        if self.leave == "after_tokens" and self.leave_after_tokens < 1:
            raise UsageError(f"leave='after_tokens' needs leave_after_tokens >= 1, but got {self.leave_after_tokens}")
        if self.leave == "after_tokens" and self.read == "stalled":
            raise UsageError("a stalled reader reads no tokens: leave it after_seconds, not after_tokens")
        if self.leave == "after_seconds" and not self.leave_after_s > 0:
            raise UsageError(f"leave='after_seconds' needs leave_after_s > 0, but got {self.leave_after_s}")
        if self.pace is not None:
            Pace.parse(self.pace, what="Behaviour.pace")
        if self.api is not None:
            parse_api(self.api, what="Behaviour.api")
        unknown = sorted({name for name, _ in self.upstream} - set(TAG_KEYS))
        if unknown:
            raise UsageError(f"Behaviour.upstream names {unknown[0]!r}, but the settings are {', '.join(TAG_KEYS)}")

    def label(self, pace: Pace | None = None) -> str:
        """What clients.csv records, e.g. ``paced:1024B/s+leave_after_tokens:5:reset``."""
        read = f"paced:{pace}" if self.read == "paced" and pace is not None else self.read
        if self.leave == "never":
            return read
        amount = {"after_tokens": f":{self.leave_after_tokens}", "after_seconds": f":{self.leave_after_s:g}s"}
        return f"{read}+leave_{self.leave}{amount.get(self.leave, '')}:{self.leave_how}"
