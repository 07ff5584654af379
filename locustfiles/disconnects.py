"""Abrupt disconnects: after a warm-up, waves of clients read a few tokens and leave (by reset, by a plain close,
and before the headers arrive), leave a silent upstream (its headers sent, its first token far beyond the wave;
and one silent before its headers), churn (clients that connect, read one token and reset, at a steady rate),
then a drain in which no client is connected.

The churn shows what a server keeps per connection (descriptors, threads, asyncio tasks): it lasts at least 8 s
whatever the scale, so each of its four rounds has readings enough.

In the leave waves the upstream's streams last until something cancels them (``ENDLESS``: far longer than the
run), so a server that never cancels keeps them open to the end, at any scale; one that cancels shows none in the
drain. A server that notices its client left only at the upstream's next token holds its silent-wave streams.
The phases set the fake upstreams' defaults (``upstream=``), so this holds through servers that forward nothing of
the request. About 68 s; ``--scenario-scale 0.2`` runs it in about 22 s.
"""

from locust import constant

from harness import Behaviour, Phase, PhasedShape, StreamingUser, UpstreamBehaviour  # also registers the plugin

ENDLESS = UpstreamBehaviour(tokens=1_000_000)
"""Streams of a million tokens (5.5 hours at the default 50 tokens/s): only cancellation ends them."""
SILENT = UpstreamBehaviour(tokens=1_000_000, first_token_delay_s=600)
"""Headers at once, then ten minutes without a token (an AI upstream thinking, far beyond the wave)."""
SILENT_BEFORE_HEADERS = UpstreamBehaviour(tokens=1_000_000, header_delay_s=600)
"""Not even the headers for ten minutes."""


class WholeStreamReader(StreamingUser):
    """Reads every stream to its end, as fast as it comes."""

    behaviour = Behaviour(read="fast")
    wait_time = constant(0.5)


class ResetAfterFiveTokens(StreamingUser):
    """Reads five tokens, then resets the connection (RST)."""

    behaviour = Behaviour(read="fast", leave="after_tokens", leave_after_tokens=5, leave_how="reset")
    wait_time = constant(0.5)


class CloseAfterFiveTokens(StreamingUser):
    """Reads five tokens, then closes the connection."""

    behaviour = Behaviour(read="fast", leave="after_tokens", leave_after_tokens=5, leave_how="close")
    wait_time = constant(0.5)


class LeaveBeforeHeaders(StreamingUser):
    """Sends the request and resets the connection before the response headers arrive."""

    behaviour = Behaviour(leave="before_headers", leave_how="reset")
    wait_time = constant(0.5)


class LeaveSilentUpstream(StreamingUser):
    """Waits a second for a first token that does not come, then resets the connection."""

    behaviour = Behaviour(read="fast", leave="after_seconds", leave_after_s=1.0, leave_how="reset")
    wait_time = constant(0.5)


class Churn(StreamingUser):
    """Connects, reads one token and resets, again and again: many connect-and-leave cycles."""

    behaviour = Behaviour(read="fast", leave="after_tokens", leave_after_tokens=1, leave_how="reset")
    wait_time = constant(0.1)


class Disconnects(PhasedShape):
    phases = (
        Phase("warm-up", 6, users=6, user_classes=(WholeStreamReader,)),
        Phase("reset wave", 8, users=12, user_classes=(ResetAfterFiveTokens,), upstream=ENDLESS),
        Phase("close wave", 8, users=12, user_classes=(CloseAfterFiveTokens,), upstream=ENDLESS),
        Phase("before-headers wave", 8, users=12, user_classes=(LeaveBeforeHeaders,), upstream=ENDLESS),
        Phase("silent-upstream wave", 8, users=12, user_classes=(LeaveSilentUpstream,), upstream=SILENT),
        Phase(
            "silent-before-headers wave",
            8,
            users=12,
            user_classes=(LeaveSilentUpstream,),
            upstream=SILENT_BEFORE_HEADERS,
        ),
        Phase("churn", 10, users=8, user_classes=(Churn,), upstream=ENDLESS, min_s=8.0),
        Phase("drain", 12),
    )
