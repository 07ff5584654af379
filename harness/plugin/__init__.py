"""The Locust plugin: importing this package registers the harness's flags and run lifecycle with Locust."""

from harness.plugin import hooks as hooks

__all__ = ["hooks"]
