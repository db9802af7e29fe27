"""The websocket server: streams the journal to any number of clients, each at its own pace.

One client = one handler task that reads the journal from the client's cursor and sends batches.
A client that reads slowly only slows its own handler: ``send`` waits once the connection's
write buffer passes ``write_limit``, the cursor stops advancing, and if the journal drops the
events under the cursor the client is told with one ``EventsLost`` and carries on from the oldest
event still held. The capture thread and the other clients never wait for it. See
docs/protocol.md for what a client sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from agent.codec import msgspec
from agent.events import PROTOCOL_VERSION, AnyEvent, EventsLost, Hello, LostReason
from agent.journal import AppendSignal, Journal
from agent.lifecycle import ClientPresence
from agent.requests import MAX_REQUEST_BYTES, AnyRequest, decode_request
from agent.wire import EVENTS_PATH, encode_batch

log = logging.getLogger("agent.server")

BATCH_EVENTS = 4000
"""Events per message at most. Under a flood a message then carries a whole capture read
(a few thousand small segments) rather than a quarter of one: every message costs both ends a
read, an encode or decode and a websocket frame, whatever it holds."""
EVENT_OVERHEAD = 68
"""Bytes an event costs in a message besides its data (a DataReceived with the largest seq,
conn and timestamp the agent writes)."""
BATCH_BYTES = 1024 * 1024 - BATCH_EVENTS * EVENT_OVERHEAD - 4096
"""Data per message, so that even a batch of BATCH_EVENTS events stays under 1 MiB, the default
message size limit of websockets clients (a single larger event is still sent alone)."""
# What may wait in a client's user-space write buffer before its sender pauses; the kernel
# socket buffer comes on top. Large enough to keep a port-forward busy, small enough that a
# stalled client costs little.
WRITE_LIMIT = 1024 * 1024
SHUTDOWN_REASON = "podtap agent is shutting down"
WHERE_INTERVAL = 1.0
"""Seconds between two notices to a client that is behind of where the capture is."""

RequestHandler = Callable[[AnyRequest], Awaitable[None]]


@dataclass(frozen=True)
class AgentInfo:
    """What the agent says about itself in every ``Hello``."""

    agent_id: str
    version: str
    target: str
    ports: tuple[int, ...]
    interfaces: tuple[str, ...]


@dataclass(frozen=True)
class ResumeRequest:
    """The query of ``/v1/events?after=SEQ&agent=AGENT_ID``: both parts are optional."""

    after: int = 0
    agent: str | None = None


def parse_resume(query: str) -> ResumeRequest:
    """Raises ``ValueError`` with a sentence for the client when the query is malformed."""
    fields = parse_qs(query, keep_blank_values=True)
    after_values = fields.get("after", ["0"])
    try:
        after = int(after_values[-1] or "0")
    except ValueError:
        raise ValueError("after must be a sequence number (a whole number).") from None
    if after < 0:
        raise ValueError("after must not be negative.")
    agent = fields.get("agent", [""])[-1] or None
    return ResumeRequest(after=after, agent=agent)


def start_cursor(request: ResumeRequest, agent_id: str) -> int:
    """The seq after which a new stream starts.

    The client's ``after`` is only meaningful for the agent that numbered it: a client that
    names another agent (this one restarted) starts from seq 0, so it is told if the journal
    no longer holds the start. A client that names no agent is new and trusts ``after``.
    """
    if request.agent is not None and request.agent != agent_id:
        return 0
    return request.after


class EventServer:
    def __init__(
        self,
        journal: Journal,
        info: AgentInfo,
        token: str | None,
        *,
        batch_events: int = BATCH_EVENTS,
        batch_bytes: int = BATCH_BYTES,
        write_limit: int = WRITE_LIMIT,
        close_timeout: float = 2.0,
        on_request: RequestHandler | None = None,
    ) -> None:
        self._journal = journal
        self.info = info
        self._expected_auth = None if token is None else f"Bearer {token}".encode()
        self._batch_events = batch_events
        self._batch_bytes = batch_bytes
        self._write_limit = write_limit
        self._close_timeout = close_timeout
        self.presence = ClientPresence()
        self._server: Server | None = None
        self._signal: AppendSignal | None = None
        self._final_seq: int | None = None  # set on shutdown: send up to here, then close
        self._handlers: set[asyncio.Task[None]] = set()
        self._on_request = on_request

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on ``host:port`` (port 0: any free port); returns the address bound."""
        self._signal = AppendSignal(asyncio.get_running_loop())
        self._journal.set_listener(self._signal.notify)
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._check_request,
            compression=None,  # captured bytes are often compressed already; save the CPU
            max_size=MAX_REQUEST_BYTES,  # clients only ever send small requests
            write_limit=self._write_limit,
            close_timeout=self._close_timeout,
            ping_interval=20,
            ping_timeout=20,
            logger=logging.getLogger("agent.server.websockets"),
        )
        bound = self._server.sockets[0].getsockname()
        return str(bound[0]), int(bound[1])

    async def stop(self, flush_timeout: float = 1.0) -> None:
        """Give every client up to ``flush_timeout`` to receive what the journal holds now,
        then close all connections with code 1001 (going away)."""
        if self._server is None:
            return
        self._final_seq = self._journal.last_seq
        if self._signal is not None:
            self._signal.wake()
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=flush_timeout)
        for connection in list(self._server.all_connections):
            # Its write buffer is still full after the flush: it reads nothing, and would not
            # read a close frame either.
            if connection.transport.get_write_buffer_size() >= self._write_limit:
                connection.transport.abort()
        self._server.close(code=CloseCode.GOING_AWAY, reason=SHUTDOWN_REASON)
        try:
            await asyncio.wait_for(self._server.wait_closed(), self._close_timeout + 1.0)
        except TimeoutError:
            # A client that reads nothing never takes the close frame off a full buffer.
            for connection in list(self._server.all_connections):
                connection.transport.abort()
            await self._server.wait_closed()
        self._journal.set_listener(None)

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if self._expected_auth is not None:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, self._expected_auth):
                log.warning("refused %s: missing or wrong token", _peer(connection))
                return connection.respond(
                    HTTPStatus.UNAUTHORIZED,
                    "podtap agent: missing or wrong token; send the agent's token as "
                    "'Authorization: Bearer TOKEN'.\n",
                )
        url = urlsplit(request.path)
        if url.path != EVENTS_PATH:
            return connection.respond(
                HTTPStatus.NOT_FOUND, f"podtap agent: no such path; events are at {EVENTS_PATH}.\n"
            )
        try:
            parse_resume(url.query)
        except ValueError as error:
            return connection.respond(HTTPStatus.BAD_REQUEST, f"podtap agent: {error}\n")
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None  # the handshake is over
        request = parse_resume(urlsplit(connection.request.path).query)
        cursor = start_cursor(request, self.info.agent_id)
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.presence.joined()
        log.info("client %s connected, resuming after seq %d", _peer(connection), cursor)
        try:
            await connection.send(encode_batch([self._hello()]))
            await _until_first_done(
                self._send_events(connection, cursor), self._read_requests(connection)
            )
        except ConnectionClosed:
            pass
        finally:
            self._handlers.discard(task)
            self.presence.left(asyncio.get_running_loop().time())
            log.info("client %s left (code %s)", _peer(connection), connection.close_code)

    def _where_capture_is(self) -> list[AnyEvent]:
        """A ``Hello`` (the journal's ``next_seq`` now) and a copy of the newest ``Stats``,
        both with seq 0: per-client notices, never journaled."""
        where: list[AnyEvent] = [self._hello()]
        stats = self._journal.latest_stats
        if stats is not None:
            notice = copy.copy(stats)
            notice.seq = 0
            where.append(notice)
        return where

    def _hello(self) -> Hello:
        info = self.info
        return Hello(
            ts=time.time(),
            protocol=PROTOCOL_VERSION,
            version=info.version,
            agent_id=info.agent_id,
            target=info.target,
            ports=list(info.ports),
            interfaces=list(info.interfaces),
            oldest_seq=self._journal.oldest_seq,
            next_seq=self._journal.next_seq,
        )

    async def _read_requests(self, connection: ServerConnection) -> None:
        """Read what the client sends (so that its close frame and pongs are seen) and hand
        its requests to ``on_request``, one at a time; returns when the connection closes.
        A message that is not a request is logged and ignored: the stream goes on."""
        with contextlib.suppress(ConnectionClosed):
            async for message in connection:
                if self._on_request is None or isinstance(message, str):
                    continue
                try:
                    request = decode_request(message)
                except (msgspec.DecodeError, msgspec.ValidationError) as error:
                    log.warning("ignored a malformed request from %s: %s", _peer(connection), error)
                    continue
                await self._on_request(request)

    async def _send_events(self, connection: ServerConnection, cursor: int) -> None:
        journal, signal = self._journal, self._signal
        assert signal is not None
        # A loss noticed on the first read is the journal's (the client asked for something
        # too old); later, it is the client's own when it was behind, the journal's when a
        # burst larger than the journal arrived while the client was keeping up.
        lost_reason: LostReason = "journal"
        said_where = 0.0
        while True:
            final = self._final_seq
            if final is not None and cursor >= final:
                await connection.close(CloseCode.GOING_AWAY, SHUTDOWN_REASON)
                return
            events = journal.read(cursor, self._batch_events, self._batch_bytes, lost_reason)
            if not events:
                await signal.wait()
                continue
            cursor = events[-1].seq
            now = time.monotonic()
            if cursor < journal.last_seq and now - said_where >= WHERE_INTERVAL:
                # A client that is behind learns now, not once it has caught up, how far the
                # journal is ahead and what the capture lost: seq 0, out of the journal.
                events = [*events, *self._where_capture_is()]
                said_where = now
            await connection.send(encode_batch(events))
            lost_reason = "journal" if cursor >= journal.last_seq else "slow-client"
            _log_loss(connection, events)


async def _until_first_done(*coroutines: Coroutine[Any, Any, None]) -> None:
    """Run the coroutines until one of them ends; cancel the others."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _log_loss(connection: ServerConnection, events: Sequence[AnyEvent]) -> None:
    first = events[0]
    if isinstance(first, EventsLost):
        log.warning(
            "client %s missed %d events (seq %d..%d, %s)",
            _peer(connection),
            first.count,
            first.first_seq,
            first.first_seq + first.count - 1,
            first.reason,
        )


def _peer(connection: ServerConnection) -> str:
    address = connection.remote_address
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)
