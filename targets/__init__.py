"""The bundled servers: a fake AI upstream (the instrument) and three relays in front of it.

Each runs in its own process as ``python -m targets.<name> --port PORT``; the Locust process never imports them.
"""

BUNDLED_RELAYS = ("eager", "lazy", "bounded")
"""Relay names, in the order reports show them."""
