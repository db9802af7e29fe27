"""Reading a HAR file back: its entries as the agent events that replay them.

Entries are grouped into connections by ``connection`` id and ``_pod``; each entry becomes an
exchange (its bodies coded again as their ``Content-Encoding`` says, its ``_webSocketMessages``
and ``_grpcMessages`` put back as messages), then :mod:`tui.output.replay` turns them into
bytes. HAR from podtap and from browsers both read; a malformed entry is one sentence naming it.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import urllib.parse
from collections.abc import Iterator
from typing import Any

import msgspec

from agent.errors import UserError
from agent.events import AnyEvent, Direction
from tui.model.content import content_codings, decode_body, encode_body
from tui.model.flows import Connection, Exchange, Message, Request, Response, StreamMessage
from tui.model.timestamps import plausible_duration, plausible_time
from tui.model.websocket import OPCODES
from tui.output.har import GRPC, TRAILER, UNSEEN_METHOD, Json
from tui.output.replay import ReplayNumbering, connection_events


def _text_of(part: Json) -> bytes:
    text = part.get("text") or ""
    if not isinstance(text, str):
        return b""
    if part.get("encoding") == "base64":
        try:
            return base64.b64decode(text)
        except (binascii.Error, ValueError):
            return text.encode()
    return text.encode("utf-8")


def _header_list(part: Json, trailers: bool = False) -> list[tuple[str, str]]:
    """The headers of a HAR request or response (or, with ``trailers``, its trailers)."""
    headers: list[tuple[str, str]] = []
    for header in _list(part.get("headers")):
        if not isinstance(header, dict):
            raise ValueError("a header is not an object with a name and a value")
        if (header.get("comment") == TRAILER) != trailers:
            continue
        name, value = str(header.get("name", "")), str(header.get("value", ""))
        if name == ":authority":
            headers.insert(0, ("Host", value))
        elif name and not name.startswith(":"):
            headers.append((name, value))
    return headers


def _frame(message: Message, body: bytes, size: object) -> None:
    """Body and its true length, consistent with the message's own Content-Length."""
    message.body = body
    true_size = size if isinstance(size, int) and size >= len(body) else len(body)
    declared = message.header("content-length")
    if declared is not None and declared.strip() != str(true_size):
        # A browser's HAR keeps the decompressed body and the compressed length: frame the
        # bytes at hand, or the replayed stream would not parse.
        message.headers = [
            (n, str(len(body)) if n.lower() == "content-length" else v) for n, v in message.headers
        ]
        true_size = len(body)
    message.body_length = true_size
    message.complete = True


def _encoded_as_sent(message: Message, body: bytes) -> bytes:
    """The body coded again as its ``Content-Encoding`` says, when the HAR holds it decoded
    (as podtap and browsers write it), so that the replayed message is what was sent."""
    codings = content_codings(message)
    if not codings or not body:
        return body
    probe = Message(headers=message.headers, body=body, body_length=len(body), complete=True)
    if decode_body(probe).decoded:
        return body
    return encode_body(body, codings)


def _version(text: object) -> str:
    value = str(text or "").upper().removeprefix("HTTP/")
    if value in ("2", "2.0", "H2"):
        return "2"
    return value if value in ("1.0", "1.1") else "1.1"


def _parse_time(text: object) -> float:
    try:
        return plausible_time(datetime.datetime.fromisoformat(str(text)).timestamp())
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"startedDateTime is not a date: {str(text)[:40]!r}") from None


def _object(value: object) -> Json:
    """A part of an entry that HAR says is an object (absent: empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"an object was expected, not {type(value).__name__}")
    return value


def _list(value: object) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"a list was expected, not {type(value).__name__}")
    return value


def _millis_of(timings: Json, key: str) -> float:
    value = timings.get(key) or 0
    if not isinstance(value, int | float):
        raise ValueError(f"timings.{key} is not a number")
    return plausible_duration(float(value) / 1000)


def _entry_exchange(entry: Json, connection: Connection, index: int) -> Exchange:
    """Raises ValueError (or TypeError) saying what is wrong with a malformed entry."""
    request_part = _object(entry.get("request"))
    url = urllib.parse.urlsplit(str(request_part.get("url", "")))
    target = url.path or "/"
    if url.query:
        target += "?" + url.query
    method = str(request_part.get("method", "GET"))
    if method == UNSEEN_METHOD:
        # Replayed as a response alone, so that it pairs with a stand-in request again.
        request = Request()
    else:
        request = Request(
            headers=_header_list(request_part),
            method=method,
            target=target,
            path=url.path or "/",
            http_version=_version(request_part.get("httpVersion")),
        )
        if request.header("host") is None and url.netloc:
            request.headers.insert(0, ("Host", url.netloc))
        request.host = request.header("host") or ""
        post = _object(request_part.get("postData"))
        _frame(request, _encoded_as_sent(request, _text_of(post)), request_part.get("bodySize"))
    started = _parse_time(entry.get("startedDateTime"))
    timings = _object(entry.get("timings"))
    send, wait, receive = (_millis_of(timings, key) for key in ("send", "wait", "receive"))
    exchange = Exchange(
        key=connection.key,
        index=index,
        request=request,
        started=started,
        request_finished=started + send,
    )
    response_part = _object(entry.get("response"))
    status = response_part.get("status")
    if isinstance(status, int) and status > 0:
        response = Response(
            headers=_header_list(response_part),
            status=status,
            reason=str(response_part.get("statusText", "")),
            http_version=_version(response_part.get("httpVersion")),
        )
        response.trailers = _header_list(response_part, trailers=True)
        content = _object(response_part.get("content"))
        _frame(response, _encoded_as_sent(response, _text_of(content)), content.get("size"))
        exchange.response = response
        exchange.response_started = started + send + wait
        exchange.finished = exchange.response_started + receive
        if response.status == 101:
            exchange.messages = _messages_of(entry.get("_webSocketMessages"))
    if request.http_version == "2":
        # Their bytes are in the bodies; their times put each back on the wire when it was sent.
        exchange.messages = _grpc_messages_of(entry.get("_grpcMessages"))
    return exchange


_KINDS = {opcode: kind for kind, opcode in OPCODES.items()}


def _messages_of(part: object) -> list[StreamMessage]:
    """The WebSocket messages of a HAR entry (browsers' ``_webSocketMessages``); what does not
    read as one is left out."""
    messages: list[StreamMessage] = []
    for item in part if isinstance(part, list) else []:
        if not isinstance(item, dict):
            continue
        opcode = item.get("opcode")
        kind = _KINDS.get(opcode) if isinstance(opcode, int) else None
        text = item.get("data")
        moment = item.get("time")
        if kind is None or not isinstance(text, str) or not isinstance(moment, (int, float)):
            continue
        note = ""
        if kind == "text":
            data = text.encode("utf-8", "surrogateescape")
        elif kind == "close":
            note, _, reason = text.partition(": ")
            data = reason.encode()
        else:
            data = _text_of({"text": text, "encoding": "base64"})
        direction: Direction = "in" if item.get("type") == "send" else "out"
        messages.append(StreamMessage(direction, float(moment), kind, data, len(data), note))
    return messages


def _grpc_messages_of(part: object) -> list[StreamMessage]:
    """A gRPC call's messages from its entry's ``_grpcMessages`` (direction, time and the raw
    bytes); what does not read as one is left out."""
    messages: list[StreamMessage] = []
    for item in part if isinstance(part, list) else []:
        if not isinstance(item, dict):
            continue
        moment = item.get("time")
        raw = item.get("raw")
        if not isinstance(moment, (int, float)) or not isinstance(raw, str):
            continue
        data = _text_of({"text": raw, "encoding": "base64"})
        direction: Direction = "in" if item.get("type") == "send" else "out"
        messages.append(
            StreamMessage(direction, plausible_time(float(moment)), GRPC, data, len(data))
        )
    return messages


def read_har(data: bytes, name: str) -> Iterator[tuple[str, AnyEvent]]:
    """The (source, event) pairs that replay the HAR document ``data`` (a file called
    ``name``): one connection per ``connection`` id and ``_pod``, entries in order."""
    try:
        document = msgspec.json.decode(data)
        entries = document["log"]["entries"]
        if not isinstance(entries, list):
            raise TypeError
    except (msgspec.DecodeError, KeyError, TypeError):
        raise UserError(f"{name} is not a HAR file: it has no log.entries list.") from None
    grouped: dict[tuple[str, str], list[tuple[int, Json]]] = {}
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise UserError(f"{name}: log.entries[{number}] is not an object, as HAR entries are.")
        source = str(entry.get("_pod") or "har")
        conn_id = str(entry.get("connection") or f"entry-{number}")
        grouped.setdefault((source, conn_id), []).append((number, entry))
    numbering: dict[str, ReplayNumbering] = {}
    for (source, _conn_id), group in grouped.items():
        numbers = numbering.setdefault(source, ReplayNumbering())
        yield from _replayed_connection(source, group, numbers, name)


def _replayed_connection(
    source: str, group: list[tuple[int, Json]], numbers: ReplayNumbering, name: str
) -> Iterator[tuple[str, AnyEvent]]:
    """The events of one connection's entries; a malformed entry is one UserError naming it."""
    number = group[0][0]
    try:
        connection = _entry_connection(source, group[0][1])
        exchanges = []
        for index, (entry_number, entry) in enumerate(group):
            number = entry_number  # named in the sentence if this entry fails
            exchanges.append(_entry_exchange(entry, connection, index))
        connection.opened = min(exchange.started for exchange in exchanges)
        events = list(connection_events(connection, exchanges, numbers))
    except (ValueError, TypeError, AttributeError, OverflowError) as error:
        raise UserError(
            f"{name}: log.entries[{number}] cannot be read ({error}); podtap open reads HAR 1.2."
        ) from None
    for event in events:
        yield source, event


def _entry_connection(source: str, first: Json) -> Connection:
    server = str(first.get("serverIPAddress") or "")
    request = _object(first.get("request"))
    url = urllib.parse.urlsplit(str(request.get("url", "")))
    server_port = first.get("_serverPort") or url.port or (443 if url.scheme == "https" else 80)
    return Connection(
        key=(source, 0),
        source=source,
        conn=0,
        client=str(first.get("_clientIPAddress") or "?"),
        client_port=_port(first.get("_clientPort") or 0),
        server=server.strip("[]") or url.hostname or "?",
        server_port=_port(server_port),
        opened=0.0,
        # HTTP/2 entries are replayed as HTTP/2 frames, the rest as HTTP/1.x.
        protocol="h2" if _version(request.get("httpVersion")) == "2" else "http",
        # A first response without its request: the connection was joined mid-stream.
        mid_stream=request.get("method") == UNSEEN_METHOD,
    )


def _port(value: object) -> int:
    port = int(str(value))
    if not 0 <= port < 65536:
        raise ValueError(f"{port} is not a port number")
    return port
