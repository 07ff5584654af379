"""Per-phase upstream behaviour: what the fake upstream produces for streams that name no settings of their own.

A scenario declares it per phase (``Phase(..., upstream=UpstreamBehaviour(...))``); at each phase start the plugin
sets every fake upstream's defaults to it through ``PUT /__harness/defaults`` (loopback, ``Authorization: Bearer``
with the token the harness gave the upstreams in ``$STREAM_HARNESS_CONTROL_TOKEN``). Fields left None keep the stack
flags' values (``--upstream-tokens`` ...); a stream's own settings (its tag, its query) still win. This is what makes
a phase's streams long, silent or endless through a server that forwards nothing of the request but the prompt.
"""

from __future__ import annotations

import json
import math
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from harness.errors import UsageError

__all__ = ["CONTROL_TOKEN_ENV", "UpstreamBehaviour", "control_token", "put_defaults"]

CONTROL_TOKEN_ENV = "STREAM_HARNESS_CONTROL_TOKEN"
DEFAULTS_PATH = "/__harness/defaults"
_LIMITS = {"tokens": 1_000_000, "token_bytes": 65_536, "rate": 1_000_000.0, "delay": 600.0}
"""The fake upstream's caps (targets.upstream.settings.LIMITS; not imported: targets and harness stay apart)."""

_token: str | None = None


@dataclass(frozen=True, slots=True)
class UpstreamBehaviour:
    """The fake upstream's defaults during one phase; None = the stack flag's value."""

    tokens: int | None = None
    token_bytes: int | None = None
    rate: float | None = None
    """Tokens per second; 0 = as fast as the reader takes them."""
    header_delay_s: float | None = None
    first_token_delay_s: float | None = None
    """Seconds between the headers and the first token (a silent upstream)."""

    def __post_init__(self) -> None:
        for name, value in self.settings().items():
            whole = name in ("tokens", "token_bytes")
            low = 1 if name == "token_bytes" else 0
            cap = _LIMITS["delay"] if name.endswith("delay") else _LIMITS[name]
            ok = isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= cap
            if not ok or (whole and not float(value).is_integer()) or math.isnan(value):
                kind = "a whole number" if whole else "a number"
                raise UsageError(f"UpstreamBehaviour.{name} must be {kind} from {low} to {cap:g}, but got {value!r}")

    def settings(self) -> dict[str, int | float]:
        """The fields given, by the control route's (and the query's) names."""
        named = {
            "tokens": self.tokens,
            "token_bytes": self.token_bytes,
            "rate": self.rate,
            "header_delay": self.header_delay_s,
            "first_token_delay": self.first_token_delay_s,
        }
        return {name: value for name, value in named.items() if value is not None}


def control_token() -> str:
    """This harness process's control token (made once), which the fake upstreams it launches are given."""
    global _token
    if _token is None:
        _token = secrets.token_urlsafe(24)
    return _token


def put_defaults(
    urls: Iterable[str], settings: Mapping[str, int | float | str], token: str, *, timeout_s: float = 5.0
) -> list[str]:
    """Set every upstream's defaults to ``settings``; one sentence per upstream that did not take them."""
    body = json.dumps(dict(settings)).encode()
    failures: list[str] = []
    for url in urls:
        request = urllib.request.Request(
            url.rstrip("/") + DEFAULTS_PATH,
            data=body,
            method="PUT",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as error:
            failures.append(f"upstream {url} refused its defaults: HTTP {error.code} {error.read()[:200]!r}")
        except (urllib.error.URLError, OSError) as error:
            failures.append(f"upstream {url} did not take its defaults: {error}")
    return failures
