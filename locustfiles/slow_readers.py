"""Slow readers: clients that read far slower than the upstream produces, or not at all, alongside a few fast
ones, then a drain in which no client is connected.

A server that respects back-pressure holds a few KiB per slow client; one that buffers without bound grows for as
long as the phase lasts. The slow and stalled readers ask the upstream for long streams of 1 KiB tokens at 100
tokens/s (``LONG_STREAM``), far faster than they read, whatever the stack's ``--upstream-*`` defaults say; a relay
that keeps pulling after its client left shows its orphan streams in the drain. About 50 s; ``--read-pace`` sets
the pace of the byte-paced readers (default 1KiB/s), ``--scenario-scale 0.2`` shortens it.
"""

from locust import constant

from harness import Behaviour, Phase, PhasedShape, StreamingUser  # also registers the Locust plugin

LONG_STREAM = (("tokens", "20000"), ("token_bytes", "1024"), ("rate", "100"))
"""Per-request upstream settings of the slow readers: 100 KiB/s per stream for up to 200 s."""


class FastReader(StreamingUser):
    """Reads every stream to its end, as fast as it comes."""

    behaviour = Behaviour(read="fast")
    wait_time = constant(0.5)


class SlowByteReader(StreamingUser):
    """Reads at --read-pace bytes per second (a reader on a slow link)."""

    weight = 2
    behaviour = Behaviour(read="paced", upstream=LONG_STREAM)
    wait_time = constant(0.5)


class SlowTokenReader(StreamingUser):
    """Takes two tokens a second (a client rendering slowly)."""

    behaviour = Behaviour(read="paced", pace="2tok/s", upstream=LONG_STREAM)
    wait_time = constant(0.5)


class StalledReader(StreamingUser):
    """Reads the headers and then nothing, until the phase ends."""

    behaviour = Behaviour(read="stalled", upstream=LONG_STREAM)
    wait_time = constant(0.5)


class SlowReaders(PhasedShape):
    phases = (
        Phase("warm-up", 8, users=6, user_classes=(FastReader,)),
        Phase(
            "slow readers",
            30,
            users=15,
            user_classes=(FastReader, SlowByteReader, SlowTokenReader, StalledReader),
        ),
        Phase("drain", 12),
    )
