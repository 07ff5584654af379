"""How a stream is produced: the settings, their limits, the request overrides and the command-line defaults."""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from targets.common import bad_request

__all__ = ["LIMITS", "StreamSettings", "add_stream_arguments", "settings_from_args"]

LIMITS = {"tokens": 1_000_000, "token_bytes": 65_536, "rate": 1_000_000.0, "delay": 600.0}
"""Caps on per-request and default settings; larger values are answered with 400."""


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """How one stream is produced."""

    tokens: int
    token_bytes: int
    rate: float
    """Tokens per second; 0 = as fast as the reader accepts them."""
    header_delay_s: float
    first_token_delay_s: float

    def overridden(self, query: Mapping[str, str], body: Mapping[str, Any] | None) -> StreamSettings:
        """These settings with the request's overrides applied; 400 names a bad field and value."""
        changes: dict[str, Any] = {}
        if body is not None and body.get("max_tokens") is not None:
            changes["tokens"] = _whole(body["max_tokens"], "max_tokens", LIMITS["tokens"])
        for name, attr in (("tokens", "tokens"), ("token_bytes", "token_bytes")):
            if name in query:
                changes[attr] = _whole(query[name], name, LIMITS[name])
        if "rate" in query:
            changes["rate"] = _number(query["rate"], "rate", LIMITS["rate"])
        for name in ("header_delay", "first_token_delay"):
            if name in query:
                changes[f"{name}_s"] = _number(query[name], name, LIMITS["delay"])
        if changes.get("token_bytes", self.token_bytes) < 1:
            bad_request(f"token_bytes must be >= 1, got {changes['token_bytes']}")
        return dataclasses.replace(self, **changes)


def _whole(value: object, name: str, cap: float) -> int:
    try:
        number = int(str(value)) if not isinstance(value, bool) else -1
    except ValueError:
        bad_request(f"{name} must be a whole number from 0 to {cap:.0f}, got {value!r}")
    if not 0 <= number <= cap:
        bad_request(f"{name} must be a whole number from 0 to {cap:.0f}, got {value!r}")
    return number


def _number(value: str, name: str, cap: float) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not 0 <= number <= cap:  # also rejects nan
        bad_request(f"{name} must be a number from 0 to {cap:g}, got {value!r}")
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
