"""Where each side of a tapped HTTP/1.x connection stands, and every way that changes.

A tap cannot ask either endpoint what state it is in; it reads each side's bytes and decides
from them whether they hold messages, need scanning for the next one, wait for the server to
accept or decline a protocol switch, or are no longer HTTP at all. Every change of that is a
row of ``_TRANSITIONS``: the decoder reports what happened, the table says where that leads.
"""

from __future__ import annotations

from typing import Literal

Mode = Literal["message", "resync", "wait_switch", "wait_switch_lost", "raw"]
"""
* ``message``: the next byte starts (or continues) a message.
* ``resync``: scanning for a line that may start a message (joined late, after a gap or
  malformed input).
* ``wait_switch``: the client asked to switch protocols (an upgrade, ``CONNECT``); its next
  bytes are HTTP only if the server declines.
* ``wait_switch_lost``: the same, with some of the client's bytes lost meanwhile: if the server
  declines, the client's side needs scanning.
* ``raw``: not HTTP/1.x (any more): bytes are counted, not parsed.
"""

Event = Literal[
    "start_found",
    "message_malformed",
    "bytes_lost",
    "switch_requested",
    "switch_declined",
    "protocol_switched",
    "not_http",
]

_TRANSITIONS: dict[tuple[Mode, Event], Mode] = {
    ("resync", "start_found"): "message",
    ("message", "message_malformed"): "resync",
    ("message", "bytes_lost"): "resync",
    ("wait_switch", "bytes_lost"): "wait_switch_lost",
    ("message", "switch_requested"): "wait_switch",
    ("wait_switch", "switch_declined"): "message",
    ("wait_switch_lost", "switch_declined"): "resync",
}
"""(mode, what happened) -> the next mode. A pair not listed leaves the mode as it is: a gap
while scanning is more scanning, a second gap while waiting for a switch changes nothing more,
and nothing brings a side back from ``raw``."""

_ENDS_HTTP: frozenset[Event] = frozenset({"protocol_switched", "not_http"})


def next_mode(mode: Mode, event: Event) -> Mode:
    if event in _ENDS_HTTP:
        return "raw"
    return _TRANSITIONS.get((mode, event), mode)


class Http1State:
    """The mode of each side: ``client`` (requests) and ``server`` (responses)."""

    __slots__ = ("client", "server")

    def __init__(self, joined_late: bool) -> None:
        first: Mode = "resync" if joined_late else "message"
        self.client: Mode = first
        self.server: Mode = first

    def client_event(self, event: Event) -> None:
        self.client = next_mode(self.client, event)

    def server_event(self, event: Event) -> None:
        self.server = next_mode(self.server, event)

    def both(self, event: Event) -> None:
        self.client = next_mode(self.client, event)
        self.server = next_mode(self.server, event)
