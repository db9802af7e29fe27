"""`podtap demo`: a small shop service in its own network namespace, with live clients."""

from tui.demo.environment import PORTS, DemoEnvironment
from tui.demo.traffic import ClientCall

__all__ = ["PORTS", "ClientCall", "DemoEnvironment"]
