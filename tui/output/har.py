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
import datetime
import urllib.parse
from collections.abc import Iterable, Sequence
from typing import Any, BinaryIO

import msgspec

from tui.model.content import decode_body
from tui.model.flows import (
    Connection,
    Exchange,
    Message,
    Request,
    Response,
    StreamMessage,
)
from tui.model.protobuf_raw import render as render_protobuf
from tui.model.secrets import MASK, mask, mask_body, mask_message_text, mask_text, mask_url
from tui.model.websocket import OPCODES

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


def _websocket_messages(messages: Iterable[StreamMessage], reveal: bool) -> list[Json]:
    """The convention of browsers' HAR exports: ``type`` send (client to server) or receive,
    ``time`` in seconds since the epoch, ``opcode``, ``data`` (text, its secrets masked unless
    ``reveal``, or base64 for binary)."""
    out: list[Json] = []
    for message in messages:
        if message.kind == "text":
            data = message.data.decode("utf-8", "replace")
            if not reveal:
                data = mask_message_text(data)
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


def _grpc_messages(messages: Iterable[StreamMessage], reveal: bool) -> list[Json]:
    """A call's messages: ``type`` send (client to server) or receive, ``time`` in seconds
    since the epoch, ``data`` read without a schema as ``protoc --decode_raw`` does (its secrets
    masked unless ``reveal``), ``raw`` the payload (inflated, as far as kept) in base64, for
    tools that have the schema: binary, so kept as sent, like a binary body."""
    out: list[Json] = []
    strings = None if reveal else mask_message_text
    for message in messages:
        entry: Json = {
            "type": "send" if message.direction == "in" else "receive",
            "time": message.time,
            "data": render_protobuf(message.data, shown_string=strings),
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
    fields = sum(
        len(name.encode("latin-1", "replace")) + len(value.encode("latin-1", "replace")) + 4
        for name, value in message.headers
    )
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
            f"{request.method} {request.target} HTTP/{request.http_version}", request
        ),
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
            "status": 0,
            "statusText": "",
            "httpVersion": "",
            "cookies": [],
            "headers": [],
            "content": {"size": 0, "mimeType": ""},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
            "comment": "no response seen",
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
            f"HTTP/{response.http_version} {response.status} {response.reason}".rstrip(), response
        ),
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
        "timings": {
            "blocked": -1,
            "dns": -1,
            "connect": -1,
            "ssl": -1,
            "send": send,
            "wait": round(wait, 3),
            "receive": receive,
        },
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
            entry["_grpcMessages"] = _grpc_messages(grpc, reveal)
        if len(grpc) < len(exchange.messages):
            entry["_webSocketMessages"] = _websocket_messages(
                (message for message in exchange.messages if message.kind != GRPC), reveal
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
    return (
        har_document_start(version, comment)
        + b",\n".join(_encoder.encode(entry) for entry in entries)
        + _CLOSING
    )


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


def har_of_view(
    pairs: Iterable[tuple[Connection, Iterable[Exchange]]], version: str, *, reveal: bool
) -> tuple[bytes, int]:
    """A HAR document of the given connections' exchanges, and how many entries it holds."""
    entries = [
        har_entry(exchange, connection, reveal=reveal)
        for connection, exchanges in pairs
        for exchange in exchanges
    ]
    entries.sort(key=lambda entry: str(entry["startedDateTime"]))
    return har_document(entries, version), len(entries)
