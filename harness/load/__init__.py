"""The client side: the streaming Locust user and its behaviour, one stream over one raw socket, the streaming APIs
and their token decoders, pacing, phased scenarios and their upstream behaviour, and the record of each stream.

Scenarios import it through ``from harness import ...``, not from here."""
