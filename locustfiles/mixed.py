"""A realistic mix: most clients read whole streams, some read slowly, some stall, some leave early by reset or
close, a few give up before the headers; then a burst of disconnects and a drain in which no client is connected.

About 58 s; ``--scenario-scale 0.2`` shortens it, but the mix lasts at least 15 s and the burst at least 6 s
whatever the scale: a backlog grows with the time slow readers stay, and growth per request needs requests, so the
verdicts hold at every scale (benchmarks/profiling_verdicts.py).
"""

from locust import between

from harness import Behaviour, Phase, PhasedShape, StreamingUser, UpstreamBehaviour  # also registers the plugin

SLOW_STREAM = (("tokens", "2000"), ("token_bytes", "1024"), ("rate", "100"))
"""Per-request upstream settings of the slow and stalled readers: 100 KiB/s per stream for 20 s."""
ENDLESS = UpstreamBehaviour(tokens=1_000_000)


class Reader(StreamingUser):
    """Reads every stream to its end."""

    weight = 4
    behaviour = Behaviour(read="fast")
    wait_time = between(0.2, 1.0)


class SlowReader(StreamingUser):
    """Reads at --read-pace."""

    weight = 2
    behaviour = Behaviour(read="paced", upstream=SLOW_STREAM)
    wait_time = between(0.2, 1.0)


class StalledReader(StreamingUser):
    """Reads nothing after the headers; gives up after 8 s."""

    behaviour = Behaviour(
        read="stalled", leave="after_seconds", leave_after_s=8.0, leave_how="close", upstream=SLOW_STREAM
    )
    wait_time = between(0.2, 1.0)


class Impatient(StreamingUser):
    """Reads a dozen tokens, then resets the connection."""

    weight = 2
    behaviour = Behaviour(read="fast", leave="after_tokens", leave_after_tokens=12, leave_how="reset")
    wait_time = between(0.2, 1.0)


class Browser(StreamingUser):
    """Reads for 1.5 s at two tokens a second, then closes the tab (a plain close)."""

    behaviour = Behaviour(read="paced", pace="2tok/s", leave="after_seconds", leave_after_s=1.5, leave_how="close")
    wait_time = between(0.2, 1.0)


class GivesUpEarly(StreamingUser):
    """Resets the connection before the headers arrive."""

    behaviour = Behaviour(leave="before_headers")
    wait_time = between(0.2, 1.0)


class BurstOfResets(StreamingUser):
    """Reads three tokens, then resets: many at once."""

    behaviour = Behaviour(read="fast", leave="after_tokens", leave_after_tokens=3, leave_how="reset")
    wait_time = between(0.1, 0.3)


EVERYONE = (Reader, SlowReader, StalledReader, Impatient, Browser, GivesUpEarly)


class Mixed(PhasedShape):
    phases = (
        Phase("warm-up", 8, users=6, user_classes=(Reader,)),
        Phase("mix", 20, users=33, spawn_rate=10, user_classes=EVERYONE, min_s=15.0),
        # Streams only cancellation ends (a million tokens): a server that does not cancel keeps them to the end.
        Phase("burst of disconnects", 8, users=30, user_classes=(BurstOfResets,), upstream=ENDLESS, min_s=6.0),
        Phase("mix again", 10, users=33, spawn_rate=10, user_classes=EVERYONE),
        Phase("drain", 12),
    )
