"""podtap's client: finds targets, starts agents, decodes and shows their traffic."""

from agent import __version__

__all__ = ["__version__"]
