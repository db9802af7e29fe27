"""The header inventory: which request headers are seen, how often, with which values."""

from __future__ import annotations

from dataclasses import dataclass, field

from tui.model.flows import Request


@dataclass(slots=True)
class HeaderStats:
    name: str
    requests_with: int
    share: float
    distinct_values: int
    top_values: list[tuple[str, int]] = field(default_factory=list)


class HeaderInventory:
    def __init__(self) -> None:
        self.requests = 0

    def record(self, request: Request) -> None:
        self.requests += 1
