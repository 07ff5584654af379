"""Slow readers: clients that read far slower than the upstream produces, or not at all, alongside a few fast
ones, then a drain in which no client is connected.

A server that respects back-pressure holds a few KiB per slow client; one that buffers without bound grows for as
long as the phase lasts. While the slow readers read, the fake upstreams' defaults are long streams of 1 KiB tokens
at 2,000 tokens/s (``LONG_STREAM``), far faster than they read, whatever the stack's ``--upstream-*`` defaults say
and whatever the server forwards of the request; the fast readers ask for short ones of their own. A relay that
keeps pulling after its client left shows its orphan streams in the drain. About 50 s; ``--read-pace`` sets the
pace of the byte-paced readers (default 1KiB/s), ``--scenario-scale 0.2`` shortens it.

The slow-reader phase lasts at least 15 s whatever the scale: stalled readers must stay longer than a server's
send timeout could (the stalled-clients check needs 12 s) to tell "drops them" from "holds them forever".
"""

from locust import constant

from harness import Behaviour, Phase, PhasedShape, StreamingUser, UpstreamBehaviour  # also registers the plugin

LONG_STREAM = UpstreamBehaviour(tokens=20_000, token_bytes=1024, rate=2000)
"""The slow phase's upstream defaults: 2 MB/s per stream, 20 MB at most. Fast enough that a server whose socket
buffers the kernel autotunes (4 MB per connection on loopback) still shows a backlog of its own."""


class FastReader(StreamingUser):
    """Reads every stream to its end, as fast as it comes (200 tokens of its own asking, not the phase's 20000)."""

    behaviour = Behaviour(read="fast", upstream=(("tokens", "200"),))
    wait_time = constant(0.5)


class SlowByteReader(StreamingUser):
    """Reads at --read-pace bytes per second (a reader on a slow link)."""

    weight = 2
    behaviour = Behaviour(read="paced")
    wait_time = constant(0.5)


class SlowTokenReader(StreamingUser):
    """Takes two tokens a second (a client rendering slowly)."""

    behaviour = Behaviour(read="paced", pace="2tok/s")
    wait_time = constant(0.5)


class StalledReader(StreamingUser):
    """Reads the headers and then nothing, until the phase ends."""

    behaviour = Behaviour(read="stalled")
    wait_time = constant(0.5)


class SlowReaders(PhasedShape):
    phases = (
        Phase("warm-up", 8, users=6, user_classes=(FastReader,)),
        Phase(
            "slow readers",
            30,
            users=15,
            user_classes=(FastReader, SlowByteReader, SlowTokenReader, StalledReader),
            upstream=LONG_STREAM,
            min_s=15.0,
        ),
        Phase("drain", 12),
    )
