"""Abrupt disconnects: after a warm-up, waves of clients read a few tokens and leave (by reset, by a plain close,
and before the headers arrive), then a drain in which no client is connected.

A server that cancels its upstream when a client leaves shows no open upstream streams in the drain; one that
does not keeps producing tokens for nobody. About 50 s; ``--scenario-scale 0.2`` runs it in about 12 s.
"""

from locust import constant

from harness import Behaviour, Phase, PhasedShape, StreamingUser  # also registers the Locust plugin


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


class Disconnects(PhasedShape):
    phases = (
        Phase("warm-up", 8, users=6, user_classes=(WholeStreamReader,)),
        Phase("reset wave", 10, users=12, user_classes=(ResetAfterFiveTokens,)),
        Phase("close wave", 10, users=12, user_classes=(CloseAfterFiveTokens,)),
        Phase("before-headers wave", 8, users=12, user_classes=(LeaveBeforeHeaders,)),
        Phase("drain", 12),
    )
