"""How a stream is produced: the settings, their limits, the request overrides and the command-line defaults."""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["KEYS", "LIMITS", "BadField", "StreamSettings", "add_stream_arguments", "checked", "settings_from_args"]

LIMITS = {"tokens": 1_000_000, "token_bytes": 65_536, "rate": 1_000_000.0, "delay": 600.0}
"""Caps on per-request and default settings; larger values are answered with 400."""

KEYS = ("tokens", "token_bytes", "rate", "header_delay", "first_token_delay")
"""The per-stream settings by the names the query string, the prompt tag and the control route use."""


class BadField(ValueError):
    """A request field with a bad value; each API answers it in its own error format."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """How one stream is produced."""

    tokens: int
    token_bytes: int
    rate: float
    """Tokens per second; 0 = as fast as the reader accepts them."""
    header_delay_s: float
    first_token_delay_s: float

    def overridden(self, values: Mapping[str, object]) -> StreamSettings:
        """These settings with ``values`` (named as in :data:`KEYS`) applied; BadField names a bad one."""
        changes: dict[str, Any] = {}
        for name in KEYS:
            if name in values:
                attr = f"{name}_s" if name.endswith("delay") else name
                changes[attr] = checked(name, values[name])
        return dataclasses.replace(self, **changes)

    def capped(self, max_tokens: int | None) -> StreamSettings:
        """At most ``max_tokens`` tokens (a request's own limit, as a real model stops at it)."""
        if max_tokens is None or max_tokens >= self.tokens:
            return self
        return dataclasses.replace(self, tokens=max_tokens)

    def values(self) -> dict[str, int | float]:
        """By the names of :data:`KEYS` (what the control route answers)."""
        return {
            "tokens": self.tokens,
            "token_bytes": self.token_bytes,
            "rate": self.rate,
            "header_delay": self.header_delay_s,
            "first_token_delay": self.first_token_delay_s,
        }


def checked(name: str, value: object) -> int | float:
    """Setting ``name`` (one of :data:`KEYS`) from a text or a JSON number; BadField names it and the value."""
    if name in ("tokens", "token_bytes"):
        return whole(name, value, LIMITS[name], minimum=1 if name == "token_bytes" else 0)
    cap = LIMITS["rate"] if name == "rate" else LIMITS["delay"]
    try:
        number = float(str(value)) if isinstance(value, str | int | float) and not isinstance(value, bool) else math.nan
    except ValueError:
        number = math.nan
    if not 0 <= number <= cap:  # also rejects nan
        raise BadField(name, f"{name} must be a number from 0 to {cap:g}, got {value!r}")
    return number


def whole(name: str, value: object, cap: float, minimum: int = 0) -> int:
    """A whole number from ``minimum`` to ``cap``; BadField names it and the value."""
    try:
        number = int(str(value)) if isinstance(value, str | int) and not isinstance(value, bool) else -1
    except ValueError:
        number = -1
    if not minimum <= number <= cap:
        raise BadField(name, f"{name} must be a whole number from {minimum} to {cap:.0f}, got {value!r}")
    return number


def _capped(kind: type[int] | type[float], cap: float, minimum: float = 0) -> Any:
    def convert(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not minimum <= value <= cap:
            raise argparse.ArgumentTypeError(f"expected a number from {minimum:g} to {cap:g}, got {text!r}")
        return value

    return convert


def add_stream_arguments(parser: argparse.ArgumentParser) -> None:
    """The upstream's stream defaults; ``harness serve`` and the Locust plugin pass them through."""
    parser.add_argument(
        "--tokens", type=_capped(int, LIMITS["tokens"]), default=200, help="tokens per stream (default: 200)"
    )
    parser.add_argument(
        "--token-bytes",
        type=_capped(int, LIMITS["token_bytes"], 1),
        default=64,
        help="bytes of content per token (default: 64)",
    )
    parser.add_argument(
        "--rate",
        type=_capped(float, LIMITS["rate"]),
        default=50.0,
        help="tokens per second per stream; 0 = as fast as the reader takes them (default: 50)",
    )
    parser.add_argument(
        "--header-delay",
        type=_capped(float, LIMITS["delay"]),
        default=0.0,
        help="seconds before the response headers (default: 0)",
    )
    parser.add_argument(
        "--first-token-delay",
        type=_capped(float, LIMITS["delay"]),
        default=0.0,
        help="seconds between the headers and the first token (default: 0)",
    )


def settings_from_args(args: argparse.Namespace) -> StreamSettings:
    return StreamSettings(
        tokens=args.tokens,
        token_bytes=args.token_bytes,
        rate=args.rate,
        header_delay_s=args.header_delay,
        first_token_delay_s=args.first_token_delay,
    )
