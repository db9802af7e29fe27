"""The podtap sniffer agent: enters a network namespace, reassembles TCP, streams events."""

__version__ = "0.1.0"
