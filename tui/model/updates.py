"""What every source of traffic yields and every consumer reads (the store, dump, record).

They live in the model, below both the sources that make them and the outputs that write them,
so that data flows one way: a source never needs an output's types, nor an output a source's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec

from agent.events import AnyEvent

SourceState = Literal["starting", "live", "reconnecting", "gone", "failed"]
SourceKind = Literal["agent", "pod"]


class AgentEvent(msgspec.Struct, frozen=True, gc=False):
    """One event from one agent. ``source`` names the agent: ``local`` or ``NAMESPACE/POD``.

    A flood brings hundreds of thousands a second, one per event: a struct is built in a tenth of
    the time of a frozen dataclass. It holds a string and an event, which never refer back to
    it, so it can form no cycle and stays out of the garbage collector's sight (whose passes
    over millions of short-lived wrappers cost as much again).
    """

    source: str
    event: AnyEvent


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """An agent's stream changed state; ``detail`` is one sentence for the user."""

    source: str
    state: SourceState
    detail: str = ""
    kind: SourceKind = "agent"
    """``pod``: a pod that a node agent taps, so that the user counts agents and pods apart
    (a node agent and each of its pods are sources of their own)."""


@dataclass(frozen=True, slots=True)
class SessionNote:
    """Something the user should know that is not an error (e.g. a guessed container)."""

    text: str


Update = AgentEvent | SourceStatus | SessionNote
