"""The header inventory: which request headers are seen, how often, with which values.

Its purpose is to help choose a header to split traffic on (mirrord's
``http_filter.header_filter``, or podtap's own ``~h`` filter), so it ranks headers by how useful
they are as such a key:

    score = share x spread x (1 - uniqueness penalty) x name penalty

* ``share``: the fraction of requests that carry the header. A key must be on the requests.
* ``spread``: 0 for a header with a single value (it splits nothing), rising with the number of
  distinct values as log2(distinct) / 3, capped at 1 (reached at 8 values).
* uniqueness: distinct values / requests carrying the header. Above 0.5 the values look
  per-request (request ids, timestamps, hashes), and the score is scaled down linearly to 0.05
  at 1.0. Values not tracked beyond the cap count as unique.
* name penalty: x0.1 for headers that are per-request or per-body by nature whatever their
  values look like (content-length, date, tracing ids, conditional-request validators).

Distinct values are tracked up to ``max_values`` per header (1,000 by default); past that the
count is shown as "1000+" and further new values are only counted as "other". Memory is bounded
whatever the traffic: at most ``max_names`` header names are tracked (later names are tallied
together as :data:`OTHER_HEADERS`), at most ``max_tracked_values`` values over all names, and a
value longer than ``MAX_VALUE_LENGTH`` is counted but not kept (it is no filter key anyway).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from tui.model.filters import regex_escape
from tui.model.flows import Request

PER_REQUEST_HEADERS = frozenset(
    {
        "content-length",
        "date",
        "x-request-id",
        "request-id",
        "x-correlation-id",
        "correlation-id",
        "traceparent",
        "tracestate",
        "x-b3-traceid",
        "x-b3-spanid",
        "x-b3-parentspanid",
        "x-b3-sampled",
        "b3",
        "x-amzn-trace-id",
        "x-cloud-trace-context",
        "uber-trace-id",
        "if-none-match",
        "if-modified-since",
        "content-md5",
        "digest",
        "sec-websocket-key",
        "x-envoy-expected-rq-timeout-ms",
        "x-envoy-attempt-count",
    }
)


OTHER_HEADERS = "(other headers)"
"""The inventory's stand-in name for every header name seen after ``max_names`` were tracked
(parentheses cannot occur in a real header name)."""
MAX_VALUE_LENGTH = 1024


@dataclass(slots=True)
class HeaderStats:
    name: str
    """Lower-case header name."""
    requests_with: int
    share: float
    distinct_values: int
    top_values: list[tuple[str, int]] = field(default_factory=list)
    distinct_capped: bool = False
    """More distinct values were seen than are tracked: ``distinct_values`` is a lower bound."""
    score: float = 0.0
    display_name: str = ""
    """The name as first seen on the wire."""

    @property
    def distinct_label(self) -> str:
        return f"{self.distinct_values}+" if self.distinct_capped else str(self.distinct_values)


@dataclass(slots=True)
class _HeaderTally:
    display_name: str
    requests_with: int = 0
    values: dict[str, int] = field(default_factory=dict)
    untracked: int = 0
    """Requests whose value was new after the cap was reached."""


class HeaderInventory:
    def __init__(
        self,
        max_values: int = 1000,
        top: int = 10,
        *,
        max_names: int = 500,
        max_tracked_values: int = 50_000,
    ) -> None:
        self.max_values = max_values
        self.top = top
        self.max_names = max_names
        self.max_tracked_values = max_tracked_values
        self.requests = 0
        self._tallies: dict[str, _HeaderTally] = {}
        self._tracked_values = 0

    def record(self, request: Request) -> None:
        self.requests += 1
        seen: set[str] = set()
        tallies = self._tallies
        for name, value in request.headers:
            key = name.lower()
            tally = tallies.get(key)
            if tally is None:
                if len(tallies) >= self.max_names + (OTHER_HEADERS in tallies):
                    key = OTHER_HEADERS
                    tally = tallies.get(key)
                if tally is None:
                    tally = tallies[key] = _HeaderTally(display_name=name)
            if key in seen:
                continue
            seen.add(key)
            tally.requests_with += 1
            if key == OTHER_HEADERS:
                tally.display_name = OTHER_HEADERS
                continue
            values = tally.values
            count = values.get(value)
            if count is not None:
                values[value] = count + 1
            elif (
                len(values) < self.max_values
                and self._tracked_values < self.max_tracked_values
                and len(value) <= MAX_VALUE_LENGTH
            ):
                values[value] = 1
                self._tracked_values += 1
            else:
                tally.untracked += 1

    def __len__(self) -> int:
        return len(self._tallies)

    def stats(self, name: str) -> HeaderStats | None:
        tally = self._tallies.get(name.lower())
        if tally is None:
            return None
        return self._stats(name.lower(), tally)

    def _stats(self, key: str, tally: _HeaderTally) -> HeaderStats:
        share = tally.requests_with / self.requests if self.requests else 0.0
        distinct = len(tally.values)
        top = sorted(tally.values.items(), key=lambda item: (-item[1], item[0]))[: self.top]
        return HeaderStats(
            name=key,
            requests_with=tally.requests_with,
            share=share,
            distinct_values=distinct,
            top_values=top,
            distinct_capped=tally.untracked > 0,
            score=self._score(key, tally, share),
            display_name=tally.display_name,
        )

    def _score(self, key: str, tally: _HeaderTally, share: float) -> float:
        distinct = len(tally.values) + tally.untracked
        if distinct < 2 or tally.requests_with == 0:
            return 0.0
        spread = min(1.0, math.log2(distinct) / 3)
        uniqueness = distinct / tally.requests_with
        unique_factor = 1.0 if uniqueness <= 0.5 else max(0.05, 2 * (1 - uniqueness))
        name_factor = 0.1 if key in PER_REQUEST_HEADERS else 1.0
        return share * spread * unique_factor * name_factor

    def names_by_usefulness(self) -> list[HeaderStats]:
        """Every header seen, the best filter keys first (see the module's docstring)."""
        all_stats = [self._stats(key, tally) for key, tally in self._tallies.items()]
        return sorted(all_stats, key=lambda s: (-s.score, -s.share, s.name))

    def values(self, name: str) -> list[tuple[str, int]]:
        """The tracked values of header ``name`` with their counts, most frequent first."""
        tally = self._tallies.get(name.lower())
        if tally is None:
            return []
        return sorted(tally.values.items(), key=lambda item: (-item[1], item[0]))

    def count_matching(self, name: str, value: str) -> int:
        """Requests seen so far whose header ``name`` had exactly ``value``."""
        tally = self._tallies.get(name.lower())
        return 0 if tally is None else tally.values.get(value, 0)

    def clear(self) -> None:
        self.requests = 0
        self._tallies.clear()
        self._tracked_values = 0

    @staticmethod
    def mirrord_filter(name: str, value: str) -> str:
        return mirrord_filter(name, value)

    @staticmethod
    def mirrord_config(name: str, value: str) -> str:
        return mirrord_config(name, value)


def mirrord_filter(name: str, value: str) -> str:
    """mirrord's ``header_filter`` regex selecting exactly this header value."""
    return f"^{name.lower()}: {regex_escape(value)}$"


def mirrord_config(name: str, value: str) -> str:
    """A mirrord config (JSON) that steals only the requests carrying this header value."""
    config = {
        "feature": {
            "network": {
                "incoming": {
                    "mode": "steal",
                    "http_filter": {"header_filter": mirrord_filter(name, value)},
                }
            }
        }
    }
    return json.dumps(config)
