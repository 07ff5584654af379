"""A short scenario for tests whose subject is not a bundled scenario (the comparison, attaching, other APIs, the
web UI's flows, distributed mode): clients reading whole short streams, about 7 s."""

from locust import constant

from harness import Behaviour, Phase, PhasedShape, StreamingUser


class Reader(StreamingUser):
    behaviour = Behaviour(read="fast")
    wait_time = constant(0.1)


class Short(PhasedShape):
    phases = (
        Phase("warm-up", 1.5, users=4, user_classes=(Reader,)),
        Phase("load", 4, users=6, spawn_rate=6, user_classes=(Reader,)),
        Phase("drain", 1.5),
    )
