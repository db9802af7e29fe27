"""One reconnecting event stream per agent, and the fan-in that merges several into one.

:class:`AgentStream` turns a websocket to one agent into batches of updates that survive
disconnects: it reconnects with backoff and asks the agent to resume after the last event it
delivered, so nothing is lost or repeated (the agent's journal answers with an ``EventsLost``
when it no longer holds what was missed; that is passed through as is).

How a websocket is opened is the caller's business (a :data:`Connector`): locally a plain
connection to ``ws://127.0.0.1:PORT``, on Kubernetes a fresh port-forward per connection.
:class:`UpdateFanIn` merges the batches of any number of sources, including ones added while it
is being read (pods that become ready later), into one async iterator.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Literal

import msgspec
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from agent.errors import UserError
from agent.events import OLDEST_PROTOCOL, PROTOCOL_VERSION, AnyEvent, EventsLost, Hello
from agent.wire import EVENTS_PATH, decode_batch
from tui.model.updates import AgentEvent, SourceStatus, Update

Connector = Callable[[str], Awaitable[ClientConnection]]
"""Opens a fresh websocket to an agent, given the request path and query."""


class StreamEnded(UserError):
    """Raised by a connector when the agent is known to be gone for good (e.g. its process
    exited): the stream stops retrying and reports ``state`` with this sentence."""

    def __init__(self, sentence: str, state: Literal["gone", "failed"] = "failed") -> None:
        super().__init__(sentence)
        self.state: Literal["gone", "failed"] = state


def bearer_headers(token: str | None) -> dict[str, str]:
    """The handshake headers that authenticate to an agent started with ``token``."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def events_path(after: int, agent_id: str | None) -> str:
    """The request path that resumes a stream after event ``after`` of agent ``agent_id``."""
    query = f"after={after}"
    if agent_id:
        query += f"&agent={agent_id}"
    return f"{EVENTS_PATH}?{query}"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between reconnection attempts: ``first`` seconds, doubling up to ``limit``."""

    first: float = 0.1
    limit: float = 2.0

    def delays(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield delay
            delay = min(delay * 2, self.limit)


class ResumeCursor:
    """Sans-IO bookkeeping of what has been delivered, so a resumed stream repeats nothing.

    Journaled events have ``seq`` >= 1 and are delivered at most once; events with ``seq`` 0
    (``Hello``, per-client notices) are never journaled and always pass.
    """

    __slots__ = ("agent_id", "last_seq")

    def __init__(self) -> None:
        self.agent_id: str | None = None
        self.last_seq = 0

    def greet(self, hello: Hello) -> bool:
        """Note the agent that answered; True when it is a different agent than before (it
        restarted), in which case its sequence numbers start over."""
        restarted = self.agent_id is not None and hello.agent_id != self.agent_id
        if restarted:
            self.last_seq = 0
        self.agent_id = hello.agent_id
        return restarted

    def admit(self, events: Sequence[AnyEvent]) -> list[AnyEvent]:
        """The events not delivered before, in order; advances the cursor past them."""
        fresh: list[AnyEvent] = []
        last = self.last_seq
        # A flood passes hundreds of thousands of events a second here: the checks are the cheapest
        # Python has (isinstance against an event type that does not match costs more).
        for event in events:
            seq = event.seq
            if seq > last:
                last = seq
            elif seq:
                continue
            fresh.append(event)
            if type(event) is EventsLost:
                # Those events will never come: resuming must not ask for them again.
                last = max(last, event.first_seq + event.count - 1)
        self.last_seq = last
        return fresh

    def path(self) -> str:
        return events_path(self.last_seq, self.agent_id)


class _Fatal(Exception):
    def __init__(self, state: Literal["gone", "failed"], sentence: str) -> None:
        super().__init__(sentence)
        self.state: Literal["gone", "failed"] = state
        self.sentence = sentence


class AgentStream:
    """Batches of updates from one agent, forever: ``async for batch in stream``.

    Yields ``SourceStatus`` ``live`` when connected, ``reconnecting`` while it cannot reach the
    agent, and ``failed``/``gone`` (then stops) when retrying cannot help: a refused token, an
    incompatible agent, or a connector that raises :class:`StreamEnded` / ``UserError``.
    The connector authenticates (see :func:`bearer_headers`); ``token`` only lets the stream
    say why a refusal happened.
    """

    def __init__(
        self,
        source: str,
        connect: Connector,
        token: str | None = None,
        *,
        backoff: Backoff = Backoff(),
    ) -> None:
        self.source = source
        self._connect = connect
        self._token = token
        self._backoff = backoff
        self.cursor = ResumeCursor()

    def __aiter__(self) -> AsyncIterator[list[Update]]:
        return self._run()

    async def _run(self) -> AsyncIterator[list[Update]]:
        loop = asyncio.get_running_loop()
        delays = self._backoff.delays()
        ever_connected = False
        announced = False  # told the user we are reconnecting, and not yet that we are back
        broke_because = ""  # why the last working connection ended
        while True:
            try:
                websocket = await self._open()
            except _Fatal as fatal:
                yield [SourceStatus(self.source, fatal.state, fatal.sentence)]
                return
            except _Retry as retry:
                if not announced:
                    announced = True
                    sentence = retry.sentence(ever_connected, broke_because)
                    yield [SourceStatus(self.source, "reconnecting", sentence)]
                await asyncio.sleep(next(delays))
                continue
            connected_at = loop.time()
            try:
                async with contextlib.aclosing(self._receive(websocket, ever_connected)) as batches:
                    async for batch in batches:
                        ever_connected, announced = True, False
                        yield batch
            except _Fatal as fatal:
                yield [SourceStatus(self.source, fatal.state, fatal.sentence)]
                return
            except _Retry as broke:
                broke_because = str(broke.args[0])
            finally:
                await _close(websocket)
            # A stream that broke after working is retried at once: an agent restart or a
            # short hiccup heals without a word. One that keeps breaking right after it
            # connected is retried with growing delays instead of in a tight loop.
            if loop.time() - connected_at < 1.0:
                await asyncio.sleep(next(delays))
            else:
                delays = self._backoff.delays()

    async def _open(self) -> ClientConnection:
        try:
            return await self._connect(self.cursor.path())
        except StreamEnded as ended:
            raise _Fatal(ended.state, str(ended)) from None
        except UserError as error:
            raise _Fatal("failed", str(error)) from None
        except InvalidStatus as refused:
            status = refused.response.status_code
            if status == 401:
                raise _Fatal("failed", self._token_sentence()) from None
            if status == 403:
                raise _Fatal("failed", "The way to the agent refused podtap (HTTP 403).") from None
            raise _Retry(f"the agent answered HTTP {status}") from None
        except (OSError, WebSocketException, TimeoutError, EOFError) as error:
            raise _Retry(_describe(error)) from None

    def _token_sentence(self) -> str:
        if self._token:
            return (
                "The agent refused podtap's token: it was started for another session; "
                "stop it and let podtap start its own."
            )
        return "The agent requires a token: set PODTAP_TOKEN to the token it was started with."

    async def _receive(
        self, websocket: ClientConnection, reconnected: bool
    ) -> AsyncGenerator[list[Update], None]:
        source = self.source
        greeted = False
        try:
            async for message in websocket:
                if isinstance(message, str):
                    continue  # the protocol sends binary batches only; text is not ours
                try:
                    events = decode_batch(message)
                except (msgspec.DecodeError, msgspec.ValidationError) as error:
                    raise _Fatal(
                        "failed",
                        f"The agent sent data podtap cannot read ({error}): "
                        "use the same podtap version for the agent and the client.",
                    ) from None
                if not greeted:
                    first = events[0] if events else None
                    if not isinstance(first, Hello):
                        raise _Fatal(
                            "failed",
                            "The agent did not greet podtap first: is the port-forward "
                            "reaching a podtap agent?",
                        )
                    if not OLDEST_PROTOCOL <= first.protocol <= PROTOCOL_VERSION:
                        raise _Fatal(
                            "failed",
                            f"The agent speaks protocol {first.protocol} and this podtap "
                            f"speaks {PROTOCOL_VERSION}: use the same podtap version for both.",
                        )
                    greeted = True
                    resumed_after = self.cursor.last_seq
                    restarted = self.cursor.greet(first)
                    yield [
                        SourceStatus(
                            source,
                            "live",
                            _live_sentence(first, reconnected, restarted, resumed_after),
                        )
                    ]
                fresh = self.cursor.admit(events)
                if fresh:
                    yield [AgentEvent(source, event) for event in fresh]
        except ConnectionClosed as closed:
            raise _Retry(_describe(closed)) from None
        except (OSError, TimeoutError) as error:
            raise _Retry(_describe(error)) from None
        reason = websocket.close_reason or f"code {websocket.close_code}"
        raise _Retry(f"the agent closed the stream: {reason}")


class _Retry(Exception):
    def sentence(self, was_connected: bool, broke_because: str) -> str:
        if was_connected:
            why = broke_because or self.args[0]
            return f"Lost the stream from the agent ({why}); reconnecting."
        return f"Cannot reach the agent ({self.args[0]}); retrying."


async def _close(websocket: ClientConnection) -> None:
    """Close politely if the other end answers soon, else just drop the connection: a dead
    port-forward must not hold up a reconnection or podtap's exit."""
    try:
        async with asyncio.timeout(2):
            await websocket.close()
    except (TimeoutError, OSError, WebSocketException):
        websocket.transport.abort()


def _live_sentence(hello: Hello, reconnected: bool, restarted: bool, resumed_after: int) -> str:
    if restarted:
        return f"The agent restarted (now {hello.agent_id}): its connections start over."
    if reconnected:
        return f"Reconnected to the agent; resumed after event {resumed_after}."
    if hello.target.startswith("node/"):  # a node agent: each pod says where it captures
        return f"Connected to agent {hello.agent_id} on {hello.target.removeprefix('node/')}."
    interfaces = ", ".join(hello.interfaces) or "no interfaces yet"
    return f"Connected to agent {hello.agent_id} (capturing on {interfaces})."


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class UpdateFanIn:
    """Merges the batches of several sources into one async iterator of batches.

    Order is kept per source; sources can be added and removed while the fan-in is being read.
    Reading ends once :meth:`seal` was called and every source has finished, or after
    :meth:`aclose`. A source that raises makes the reader raise the same error.
    """

    def __init__(self, *, max_pending: int = 64, max_merged_updates: int = 5000) -> None:
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        # Sources wait for a slot before queueing a batch, so a slow reader slows them down
        # (the agent copes with slow clients) instead of piling up memory here.
        self._slots = asyncio.Semaphore(max_pending)
        self._max_merged = max_merged_updates
        self._pumps: dict[str, asyncio.Task[None]] = {}
        self._sealed = False
        self._closed = False

    @property
    def sources(self) -> list[str]:
        return list(self._pumps)

    def add(self, name: str, source: AsyncIterable[Sequence[Update]]) -> None:
        """Start reading ``source`` under ``name`` (unique among the running sources)."""
        if self._closed:
            raise RuntimeError("the fan-in is closed")
        if name in self._pumps:
            raise ValueError(f"source {name!r} is already being read")
        self._pumps[name] = asyncio.create_task(self._pump(name, source), name=f"pump {name}")

    async def remove(self, name: str) -> None:
        """Stop reading ``name``; what it already delivered stays delivered."""
        task = self._pumps.get(name)
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def put(self, batch: Sequence[Update]) -> None:
        """Deliver updates that come from no stream (notes, statuses of the session itself)."""
        self._queue.put_nowait(_Item("batch", list(batch), counted=False))

    def seal(self) -> None:
        """No more sources will be added: reading ends when the current ones finish."""
        self._sealed = True
        self._end_if_done()

    async def aclose(self) -> None:
        """Stop every source and end reading. Sources stop together: each may take a moment
        to close its connection, and a session can have dozens."""
        self._closed = True
        await asyncio.gather(*(self.remove(name) for name in list(self._pumps)))
        self._queue.put_nowait(_Item("end"))

    def __aiter__(self) -> AsyncIterator[list[Update]]:
        return self._read()

    async def _read(self) -> AsyncIterator[list[Update]]:
        queue = self._queue
        while True:
            item = await queue.get()
            if item.kind != "batch":
                item.finish()
                return
            merged = self._take(item)
            # Merge what else is already waiting: one batch for the consumer instead of many.
            pending: _Item | None = None
            while len(merged) < self._max_merged and not queue.empty():
                more = queue.get_nowait()
                if more.kind != "batch":
                    pending = more
                    break
                merged.extend(self._take(more))
            yield merged
            if pending is not None:
                pending.finish()
                return

    def _take(self, item: _Item) -> list[Update]:
        if item.counted:
            self._slots.release()
        return item.updates

    async def _pump(self, name: str, source: AsyncIterable[Sequence[Update]]) -> None:
        batches = aiter(source)
        try:
            async for batch in batches:
                if batch:
                    await self._slots.acquire()
                    self._queue.put_nowait(_Item("batch", list(batch)))
        except Exception as error:
            self._queue.put_nowait(_Item("error", error=error))
        finally:
            self._pumps.pop(name, None)
            # Close the source now (its websocket, its port-forward), not whenever the
            # garbage collector gets to it.
            close = getattr(batches, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
            self._end_if_done()

    def _end_if_done(self) -> None:
        if self._sealed and not self._pumps and not self._closed:
            self._closed = True
            self._queue.put_nowait(_Item("end"))


@dataclass(slots=True)
class _Item:
    kind: Literal["batch", "error", "end"]
    updates: list[Update] = field(default_factory=list)
    counted: bool = True
    error: Exception | None = None

    def finish(self) -> None:
        """End reading: quietly for ``end``, by raising the source's error for ``error``."""
        if self.error is not None:
            raise self.error
