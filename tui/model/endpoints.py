"""Per-endpoint aggregates: for each method and route template, how many requests, how fast
they come, how many failed, and latency quantiles, updated as exchanges arrive.

Fed the exchanges a store change created or changed (each request is counted once, when it
starts; its status and latency once, when its response starts; a gRPC call's status once its
trailers say it), it keeps bounded memory: at
most ``max_endpoints`` rows (later endpoints share an ``(other)`` row), one quantile sketch
each, and per-second counts for the last ``WINDOW`` seconds. Times are the exchanges' capture
times; whoever asks for a rate says what "now" is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tui.model.flows import ConnectionKey, Exchange
from tui.model.grpc import call_status, is_grpc
from tui.model.quantiles import QuantileSketch
from tui.model.routes import RouteCache

WINDOW = 60
"""Seconds of per-second request counts kept per endpoint (the sparkline's history)."""

RATE_SECONDS = 10
"""The rate is the mean over this many seconds up to now."""

OTHER_ROUTE = "(other endpoints)"

EndpointKey = tuple[str, str]
"""(method, route template)."""


@dataclass(slots=True, eq=False)
class Endpoint:
    method: str
    route: str
    protocol: str = ""
    """The protocol of the connection its first request came on (http, h2, grpc, ws…)."""
    requests: int = 0
    responses: int = 0
    client_errors: int = 0
    """Responses with a 4xx status."""
    server_errors: int = 0
    """Responses with a 5xx status."""
    grpc_errors: int = 0
    """gRPC calls that ended with a ``grpc-status`` other than 0 (OK). gRPC reports failures
    in its trailers under an HTTP 200, so they are counted apart from 4xx and 5xx: a call
    refused with an HTTP status (a 503 from a proxy) counts in 5xx alone."""
    latency: QuantileSketch = field(default_factory=QuantileSketch)
    last_seen: float = 0.0
    _percentiles: tuple[int, tuple[float | None, float | None, float | None]] = (0, (None,) * 3)
    """The last answer and the count it was for: sorting asks for them again and again."""
    _slots: list[int] = field(default_factory=lambda: [0] * WINDOW)
    _slot_seconds: list[int] = field(default_factory=lambda: [-1] * WINDOW)

    def count_request(self, at: float) -> None:
        self.requests += 1
        self.last_seen = max(self.last_seen, at)
        second = int(at)
        slot = second % WINDOW
        if self._slot_seconds[slot] != second:
            if self._slot_seconds[slot] > second:
                return  # older than the window: counted in the totals only
            self._slot_seconds[slot] = second
            self._slots[slot] = 0
        self._slots[slot] += 1

    def count_response(self, status: int | None, latency_ms: float | None) -> None:
        self.responses += 1
        if status is not None:
            if 400 <= status < 500:
                self.client_errors += 1
            elif status >= 500:
                self.server_errors += 1
        if latency_ms is not None:
            self.latency.add(latency_ms)

    def per_second(self, now: float, seconds: int = WINDOW) -> list[int]:
        """Requests in each of the last ``seconds`` whole seconds up to ``now``, oldest first."""
        last = int(now)
        counts: list[int] = []
        for second in range(last - min(seconds, WINDOW) + 1, last + 1):
            slot = second % WINDOW
            counts.append(self._slots[slot] if self._slot_seconds[slot] == second else 0)
        return counts

    def rate(self, now: float) -> float:
        """Requests per second over the last RATE_SECONDS up to ``now``."""
        return sum(self.per_second(now, RATE_SECONDS)) / RATE_SECONDS

    def count_call_status(self, code: str) -> None:
        if code != "0":
            self.grpc_errors += 1

    @property
    def errors(self) -> int:
        return self.client_errors + self.server_errors + self.grpc_errors

    def percentiles(self) -> tuple[float | None, float | None, float | None]:
        """p50, p95 and p99 latency (ms), or None before any response."""
        count, found = self._percentiles
        if count != self.latency.count:
            p50, p95, p99 = self.latency.quantiles((0.50, 0.95, 0.99))
            found = (p50, p95, p99)
            self._percentiles = (self.latency.count, found)
        return found


SortKey = Callable[[Endpoint, float], tuple[float, str]]


def _by(value: Callable[[Endpoint, float], float | None]) -> SortKey:
    def key(endpoint: Endpoint, now: float) -> tuple[float, str]:
        found = value(endpoint, now)
        # Endpoints without a figure (no response yet) sort below every real one.
        return (-1.0 if found is None else found, endpoint.route)

    return key


SORT_KEYS: dict[str, SortKey] = {
    "requests": _by(lambda e, _now: e.requests),
    "rate": _by(lambda e, now: e.rate(now)),
    "4xx": _by(lambda e, _now: e.client_errors),
    "5xx": _by(lambda e, _now: e.server_errors),
    "grpc err": _by(lambda e, _now: e.grpc_errors),
    "p50": _by(lambda e, _now: e.percentiles()[0]),
    "p95": _by(lambda e, _now: e.percentiles()[1]),
    "p99": _by(lambda e, _now: e.percentiles()[2]),
    "endpoint": lambda e, _now: (0.0, f"{e.route} {e.method}"),
}
"""Orders the endpoints table can be sorted by (the column titles of the view)."""


class EndpointTable:
    def __init__(self, *, max_endpoints: int = 500, max_awaiting: int = 100_000) -> None:
        self.max_endpoints = max_endpoints
        self.max_awaiting = max_awaiting
        self.endpoints: dict[EndpointKey, Endpoint] = {}
        self.latest = 0.0
        """The newest capture time seen (what "now" is for a finished recording)."""
        self._routes = RouteCache()
        # Exchanges counted whose response has not started yet, oldest first. Ones that never
        # get a response (reset, cut) are forgotten past max_awaiting.
        self._awaiting: dict[Exchange, Endpoint] = {}
        # gRPC calls answered whose status (in the trailers, at the call's end) is not known yet.
        self._awaiting_status: dict[Exchange, Endpoint] = {}

    def observe(
        self,
        new: Iterable[Exchange],
        changed: Iterable[Exchange],
        protocol_of: Callable[[ConnectionKey], str],
    ) -> None:
        """Count the exchanges a store change created (``new``) and changed."""
        for exchange in new:
            endpoint = self._endpoint_of(exchange, protocol_of)
            endpoint.count_request(exchange.started)
            self.latest = max(self.latest, exchange.started)
            self._awaiting[exchange] = endpoint
            self._response_seen(exchange)
        for exchange in changed:
            self._response_seen(exchange)
        for awaiting in (self._awaiting, self._awaiting_status):
            while len(awaiting) > self.max_awaiting:
                del awaiting[next(iter(awaiting))]

    def _response_seen(self, exchange: Exchange) -> None:
        response = exchange.response
        if response is None or exchange.response_started is None:
            return
        endpoint = self._awaiting.pop(exchange, None)
        if endpoint is not None:
            endpoint.count_response(exchange.status, exchange.latency_ms)
            if is_grpc(response.header("content-type")) or is_grpc(
                exchange.request.header("content-type")
            ):
                self._awaiting_status[exchange] = endpoint
        endpoint = self._awaiting_status.get(exchange)
        if endpoint is not None:
            status = call_status(exchange)
            if status is not None:
                del self._awaiting_status[exchange]
                endpoint.count_call_status(status[0])

    def _endpoint_of(
        self, exchange: Exchange, protocol_of: Callable[[ConnectionKey], str]
    ) -> Endpoint:
        request = exchange.request
        key = (request.method, self._routes.template(request.path or request.target))
        endpoint = self.endpoints.get(key)
        if endpoint is None:
            if len(self.endpoints) >= self.max_endpoints:
                key = ("*", OTHER_ROUTE)
                endpoint = self.endpoints.get(key)
            if endpoint is None:
                endpoint = Endpoint(key[0], key[1], protocol=protocol_of(exchange.key))
                self.endpoints[key] = endpoint
        return endpoint

    def sorted(self, by: str, now: float, *, descending: bool = True) -> list[Endpoint]:
        """The endpoints ordered by one of SORT_KEYS (ties by route, alphabetically)."""
        key = SORT_KEYS[by]
        rows = sorted(self.endpoints.values(), key=lambda e: key(e, now), reverse=descending)
        return rows

    def clear(self) -> None:
        self.endpoints.clear()
        self._awaiting.clear()
        self._awaiting_status.clear()
        self.latest = 0.0
