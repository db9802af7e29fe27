"""HAR 1.2: decoded exchanges as the HTTP Archive that browsers' network panels read.

One entry per exchange, with podtap's own fields where HAR has none: ``_pod`` (the agent that
saw it: ``local`` or ``NAMESPACE/POD``), ``_incomplete`` (no response was seen, or bytes were
lost), ``_clientIPAddress``/``_clientPort``/``_serverPort``. An exchange without a response keeps
its entry, with response status 0. Secrets (headers, URL parameters and userinfo, form fields,
JSON keys, JWT signatures: see :mod:`tui.model.secrets`) are masked as in the app unless
``reveal`` is set.

Messages carried inside an exchange go in ``_webSocketMessages`` (the browsers' convention) and
``_grpcMessages`` (a call's messages: ``type`` send or receive, ``time``, ``data`` as ``protoc
--decode_raw`` shows it, ``raw`` the payload in base64).

:class:`HarFileWriter` keeps the file a complete HAR document after every flush: entries that
are final are appended once; entries still waiting for their response are rewritten after them,
followed by the closing brackets, on every flush.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, BinaryIO

import msgspec

from agent.errors import UserError
from agent.events import AnyEvent, Direction
from tui.model.content import content_codings, decode_body, encode_body
from tui.model.flows import (
    Connection,
    Exchange,
    Message,
    Request,
    Response,
    StreamMessage,
)
from tui.model.protobuf_raw import render as render_protobuf
from tui.model.secrets import MASK, mask, mask_body, mask_text, mask_url
from tui.model.timestamps import plausible_duration, plausible_time
from tui.model.websocket import OPCODES
from tui.output.replay import ReplayNumbering, connection_events

HAR_VERSION = "1.2"

UNSEEN_METHOD = "UNKNOWN"
"""The method of a response's stand-in request, when the request itself was not captured."""
Json = dict[str, Any]
TRAILER = "trailer"
"""The ``comment`` of a response header that was sent as a trailer, after the body."""
GRPC = "grpc"
"""The ``kind`` of a gRPC message among an exchange's messages."""

_encoder = msgspec.json.Encoder()


def har_time(ts: float) -> str:
    """ISO 8601 with milliseconds, in UTC."""
    moment = datetime.datetime.fromtimestamp(ts, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _millis(start: float | None, end: float | None) -> float:
    if start is None or end is None:
        return 0.0
    return round(max(0.0, (end - start) * 1000.0), 3)


def _pairs(items: Iterable[tuple[str, str]]) -> list[Json]:
    return [{"name": name, "value": value} for name, value in items]


def _shown(headers: Iterable[tuple[str, str]], reveal: bool) -> list[tuple[str, str]]:
    return [(name, value if reveal else mask(name, value)) for name, value in headers]


def _cookies(message: Message, header: str, reveal: bool) -> list[Json]:
    cookies: list[Json] = []
    for value in message.header_values(header):
        pairs = value.split(";") if header == "cookie" else value.split(";")[:1]
        for pair in pairs:
            name, equals, content = pair.strip().partition("=")
            if equals and name:
                cookies.append({"name": name, "value": content if reveal else MASK})
    return cookies


def _mime(message: Message) -> str:
    return message.header("content-type") or ""


def _body_text(body: bytes, content_type: str, reveal: bool) -> Json:
    """``text``, its secrets masked unless ``reveal``; base64 with ``encoding`` when the bytes
    are not UTF-8 text."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {"text": base64.b64encode(body).decode("ascii"), "encoding": "base64"}
    if not reveal:
        text = mask_body(body, content_type).decode("utf-8", "replace")
    return {"text": text}


def _content(message: Message, reveal: bool) -> tuple[Json, list[str]]:
    """HAR's view of a body: decoded, with ``size`` its decoded length and ``compression`` the
    bytes its content coding saved when the whole body was decoded; and comments to add."""
    decoded = decode_body(message)
    shown = _body_text(decoded.data, _mime(message), reveal)
    content: Json = {"size": message.body_length, **shown}
    comments = []
    if message.body_truncated:
        comments.append(f"first {len(message.body)} of {message.body_length} bytes")
    if decoded.decoded and not (decoded.capped or decoded.partial or decoded.ended_early):
        content["size"] = len(decoded.data)
        content["compression"] = len(decoded.data) - message.body_length
    elif decoded.describe():
        comments.append(decoded.describe())
    return content, comments


def _websocket_messages(messages: Iterable[StreamMessage]) -> list[Json]:
    """The convention of browsers' HAR exports: ``type`` send (client to server) or receive,
    ``time`` in seconds since the epoch, ``opcode``, ``data`` (text, or base64 for binary)."""
    out: list[Json] = []
    for message in messages:
        if message.kind == "text":
            data = message.data.decode("utf-8", "replace")
        elif message.kind == "close":
            data = message.note
        else:
            data = base64.b64encode(message.data).decode("ascii")
        entry: Json = {
            "type": "send" if message.direction == "in" else "receive",
            "time": message.time,
            "opcode": OPCODES.get(message.kind, 0),
            "data": data,
        }
        if message.length > len(message.data):
            entry["_length"] = message.length
        if message.note and message.kind != "close":
            entry["_note"] = message.note
        out.append(entry)
    return out


def _grpc_messages(messages: Iterable[StreamMessage]) -> list[Json]:
    """A call's messages: ``type`` send (client to server) or receive, ``time`` in seconds
    since the epoch, ``data`` read without a schema as ``protoc --decode_raw`` does, ``raw``
    the payload (inflated, as far as kept) in base64, for tools that have the schema."""
    out: list[Json] = []
    for message in messages:
        entry: Json = {
            "type": "send" if message.direction == "in" else "receive",
            "time": message.time,
            "data": render_protobuf(message.data),
            "raw": base64.b64encode(message.data).decode("ascii"),
        }
        if message.length > len(message.data):
            entry["_length"] = message.length
        if message.note:
            entry["_note"] = message.note
        out.append(entry)
    return out


def _headers_size(start_line: str, message: Message) -> int:
    """Bytes from the start line to the blank line, both included, as HTTP/1.x sends them."""
    if not message.headers and not start_line:
        return -1
    fields = sum(len(name.encode("latin-1", "replace")) + len(value.encode("latin-1", "replace"))
                 + 4 for name, value in message.headers)
    return len(start_line) + 2 + fields + 2


def request_url(request: Request, connection: Connection) -> str:
    target = request.target or request.path or "/"
    if target.startswith(("http://", "https://")):
        return target
    host = request.host or request.header("host")
    if not host:
        server = f"[{connection.server}]" if ":" in connection.server else connection.server
        host = f"{server}:{connection.server_port}"
    if request.method == "CONNECT":
        return f"http://{target}"
    if not target.startswith("/"):
        target = "/" + target if target != "*" else "/*"
    return f"http://{host}{target}"


def _request(request: Request, connection: Connection, reveal: bool) -> Json:
    url = request_url(request, connection)
    if not reveal:
        url = mask_url(url)
    query = urllib.parse.urlsplit(url).query
    entry: Json = {
        "method": request.method or UNSEEN_METHOD,
        "url": url,
        "httpVersion": f"HTTP/{request.http_version}",
        "cookies": _cookies(request, "cookie", reveal),
        "headers": _pairs(_shown(request.headers, reveal)),
        "queryString": _pairs(urllib.parse.parse_qsl(query, keep_blank_values=True)),
        "headersSize": _headers_size(
            f"{request.method} {request.target} HTTP/{request.http_version}", request),
        "bodySize": request.body_length,
    }
    if request.body_length or request.header("content-type"):
        content, comments = _content(request, reveal)
        post: Json = {"mimeType": _mime(request), "text": content["text"]}
        if "encoding" in content:
            post["encoding"] = content["encoding"]
        if comments:
            post["comment"] = "; ".join(comments)
        entry["postData"] = post
    return entry


def _response(response: Response | None, reveal: bool) -> Json:
    if response is None:
        return {
            "status": 0, "statusText": "", "httpVersion": "", "cookies": [], "headers": [],
            "content": {"size": 0, "mimeType": ""}, "redirectURL": "",
            "headersSize": -1, "bodySize": -1, "comment": "no response seen",
        }
    redirect = response.header("location") or ""
    content, comments = _content(response, reveal)
    content["mimeType"] = _mime(response)
    if comments:
        content["comment"] = "; ".join(comments)
    # HAR has no place for trailers: they follow the headers, each marked as a trailer.
    trailers = [{**pair, "comment": TRAILER} for pair in _pairs(_shown(response.trailers, reveal))]
    return {
        "status": response.status,
        "statusText": response.reason,
        "httpVersion": f"HTTP/{response.http_version}",
        "cookies": _cookies(response, "set-cookie", reveal),
        "headers": _pairs(_shown(response.headers, reveal)) + trailers,
        "content": content,
        "redirectURL": redirect if reveal else mask_url(redirect, redirect=True),
        "headersSize": _headers_size(
            f"HTTP/{response.http_version} {response.status} {response.reason}".rstrip(),
            response),
        "bodySize": response.body_length,
    }


def har_entry(exchange: Exchange, connection: Connection, *, reveal: bool = False) -> Json:
    """The HAR entry of ``exchange`` (on ``connection``)."""
    send = _millis(exchange.started, exchange.request_finished)
    wait = exchange.latency_ms or 0.0
    receive = _millis(exchange.response_started, exchange.finished)
    entry: Json = {
        "startedDateTime": har_time(exchange.started),
        "time": round(send + wait + receive, 3),
        "request": _request(exchange.request, connection, reveal),
        "response": _response(exchange.response, reveal),
        "cache": {},
        "timings": {"blocked": -1, "dns": -1, "connect": -1, "ssl": -1,
                    "send": send, "wait": round(wait, 3), "receive": receive},
        "serverIPAddress": connection.server,
        "connection": str(connection.conn),
        "_pod": connection.source,
        "_clientIPAddress": connection.client,
        "_clientPort": connection.client_port,
        "_serverPort": connection.server_port,
    }
    if exchange.messages:
        grpc = [message for message in exchange.messages if message.kind == GRPC]
        if grpc:
            entry["_grpcMessages"] = _grpc_messages(grpc)
        if len(grpc) < len(exchange.messages):
            entry["_webSocketMessages"] = _websocket_messages(
                message for message in exchange.messages if message.kind != GRPC
            )
    notes = list(exchange.notes)
    if not exchange.request.method:
        notes.append("the request was not captured")
    if exchange.response is None:
        notes.append("no response seen")
    if exchange.incomplete:
        notes.append("bytes of this exchange were not captured")
    if exchange.error:
        notes.append(exchange.error if reveal else mask_text(exchange.error))
    if notes:
        entry["_incomplete"] = exchange.response is None or exchange.incomplete
        entry["comment"] = "; ".join(notes)
    return entry


def har_document_start(version: str, comment: str = "") -> bytes:
    log: Json = {"version": HAR_VERSION, "creator": {"name": "podtap", "version": version}}
    if comment:
        log["comment"] = comment
    # The document is written open-ended: entries follow, and _CLOSING ends it.
    head = _encoder.encode({"log": log})
    return head[:-2] + b',"entries":[\n'


_CLOSING = b"\n]}}\n"


def har_document(entries: Sequence[Json], version: str, comment: str = "") -> bytes:
    return (har_document_start(version, comment)
            + b",\n".join(_encoder.encode(entry) for entry in entries) + _CLOSING)


def _closing(comment: str) -> bytes:
    """The end of the document, with ``log.comment`` after the entries (JSON objects have no
    order): a comment that changes while the file is written (what was lost) is rewritten
    with the pending entries, never in the part already final."""
    if not comment:
        return _CLOSING
    return b"\n]," + _encoder.encode({"comment": comment})[1:-1] + b"}}\n"


class HarFileWriter:
    """A HAR file that is a complete document after every :meth:`flush`; ``comment`` (the
    ``log.comment``) may change until the last flush."""

    def __init__(self, stream: BinaryIO, version: str, comment: str = "") -> None:
        self._stream = stream
        self.comment = comment
        start = har_document_start(version)
        stream.write(start)
        self._final_end = len(start)
        self._file_end = len(start)
        self._final_count = 0
        self._new_final: list[bytes] = []
        self.entries_written = 0

    def add_final(self, entry: Json) -> None:
        """An entry that will not change any more: written once, at the next flush."""
        self._new_final.append(_encoder.encode(entry))

    def flush(self, pending: Iterable[Json] = ()) -> None:
        """Write the new final entries, then ``pending`` (entries that may still change) and
        the closing brackets. Shorter output is padded with spaces before the file is cut, so
        that a reader never sees a broken document, even between the two steps."""
        final = self._new_final
        self._new_final = []
        separator = b",\n" if self._final_count else b""
        final_bytes = separator + b",\n".join(final) if final else b""
        self._final_count += len(final)
        pending_encoded = [_encoder.encode(entry) for entry in pending]
        tail = b""
        if pending_encoded:
            tail = (b",\n" if self._final_count else b"") + b",\n".join(pending_encoded)
        body = final_bytes + tail + _closing(self.comment)
        stream = self._stream
        stream.seek(self._final_end)
        new_end = self._final_end + len(body)
        stream.write(body + b" " * max(0, self._file_end - new_end))
        stream.flush()
        if self._file_end > new_end:
            stream.truncate(new_end)
            stream.flush()
        self._final_end += len(final_bytes)
        self._file_end = new_end
        self.entries_written = self._final_count + len(pending_encoded)


# ------------------------------------------------------------------------------- reading


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
        message.headers = [(n, str(len(body)) if n.lower() == "content-length" else v)
                           for n, v in message.headers]
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
    exchange = Exchange(key=connection.key, index=index, request=request, started=started,
                        request_finished=started + send)
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
        messages.append(StreamMessage(direction, plausible_time(float(moment)), GRPC, data,
                                      len(data)))
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
        key=(source, 0), source=source, conn=0,
        client=str(first.get("_clientIPAddress") or "?"),
        client_port=_port(first.get("_clientPort") or 0),
        server=server.strip("[]") or url.hostname or "?",
        server_port=_port(server_port), opened=0.0,
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


def har_of_view(
    pairs: Iterable[tuple[Connection, Iterable[Exchange]]], version: str, *, reveal: bool
) -> tuple[bytes, int]:
    """A HAR document of the given connections' exchanges, and how many entries it holds."""
    entries = [har_entry(exchange, connection, reveal=reveal)
               for connection, exchanges in pairs for exchange in exchanges]
    entries.sort(key=lambda entry: str(entry["startedDateTime"]))
    return har_document(entries, version), len(entries)

