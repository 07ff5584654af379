"""stream-harness: load, server memory and upstream connections of streaming endpoints on one timeline."""

from harness.errors import (
    HarnessError,
    RunFolderError,
    TargetDiedError,
    TargetError,
    TargetStartError,
    UsageError,
)

__all__ = [
    "HarnessError",
    "RunFolderError",
    "TargetDiedError",
    "TargetError",
    "TargetStartError",
    "UsageError",
]

__version__ = "0.1.0"
