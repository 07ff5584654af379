"""The one exception tree of stream-harness.

    HarnessError              base; carries the process exit code (1)
    ├── UsageError            bad flag, URL or config value (exit 2)
    ├── TargetError           a server under test misbehaved (exit 1)
    │   ├── TargetStartError  it exited, never became ready, or its port was taken
    │   └── TargetDiedError   it exited while a run was going on
    └── RunFolderError        a run folder is missing, not a run folder, or unreadable (exit 2)

Every message names the value and what was expected, on one line.
"""

from __future__ import annotations

__all__ = [
    "HarnessError",
    "RunFolderError",
    "TargetDiedError",
    "TargetError",
    "TargetStartError",
    "UsageError",
]


class HarnessError(Exception):
    """Base of every error stream-harness raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(HarnessError):
    """A flag, URL or configuration value is malformed or out of range."""

    exit_code = 2


class TargetError(HarnessError):
    """A server under test could not be used."""


class TargetStartError(TargetError):
    """A target exited at once, never became ready, or could not bind its port."""


class TargetDiedError(TargetError):
    """A target exited while a run was going on."""


class RunFolderError(HarnessError):
    """A run folder is missing, empty, or not a run folder."""

    exit_code = 2
