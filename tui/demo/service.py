"""The demo service process: the shop over HTTP/1.1 (keep-alive), a cache line protocol, a
port that answers TLS ClientHellos with an alert, a gRPC inventory service, an HTTP/2 (h2c)
catalog and a WebSocket chat room. Runs inside the demo's network namespace:

    python -m tui.demo.service --http-port 8080 --cache-port 7000 --tls-port 8443 \
        --grpc-port 50051 --h2c-port 8081 --chat-port 8765

It prints ``ready`` on stdout once every port listens, and exits when its parent dies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import email.utils
import os
import random
import signal
import sys
from dataclasses import dataclass
from http import HTTPStatus

import h11

from tui.demo import chat, h2c, inventory
from tui.demo.shop import SERVER_NAME, Shop, ShopRequest, answer_line

_MAX_BODY = 1024 * 1024
# A fatal "handshake_failure" alert: what a TLS server says to a client it cannot serve.
TLS_HANDSHAKE_FAILURE = bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])


@dataclass(frozen=True)
class Ports:
    http: int
    cache: int
    tls: int
    grpc: int
    h2c: int
    chat: int


class HttpServer:
    def __init__(self, shop: Shop) -> None:
        self.shop = shop

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        try:
            while await self._exchange(connection, reader, writer):
                connection.start_next_cycle()
        except (h11.ProtocolError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _exchange(
        self,
        connection: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Serve one request; False when the connection is over."""
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                connection.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > _MAX_BODY:
                    return False
            elif isinstance(event, h11.EndOfMessage):
                break
            else:  # ConnectionClosed, or PAUSED at the end of a cycle
                return False
        assert request is not None
        headers = {name.decode().lower(): value.decode() for name, value in request.headers}
        answer = self.shop.handle(
            ShopRequest(request.method.decode(), request.target.decode(), headers, bytes(body))
        )
        if answer.delay:
            await asyncio.sleep(answer.delay)
        response_headers = [
            ("server", SERVER_NAME),
            ("date", email.utils.formatdate(usegmt=True)),
        ]
        if answer.content_type:
            response_headers.append(("content-type", answer.content_type))
        if answer.status != 204:
            response_headers.append(("content-length", str(len(answer.body))))
        if "x-request-id" in headers:
            response_headers.append(("x-request-id", headers["x-request-id"]))
        writer.write(
            connection.send(
                h11.Response(
                    status_code=answer.status,
                    headers=response_headers,
                    reason=HTTPStatus(answer.status).phrase,
                )
            )
            or b""
        )
        if answer.body:
            writer.write(connection.send(h11.Data(data=answer.body)) or b"")
        writer.write(connection.send(h11.EndOfMessage()) or b"")
        await writer.drain()
        return connection.our_state is h11.DONE and connection.their_state is h11.DONE


async def serve_cache(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    store: dict[str, str] = {}
    try:
        while line := await reader.readline():
            reply, done = answer_line(line.decode(errors="replace"), store)
            writer.write(reply.encode() + b"\r\n")
            await writer.drain()
            if done:
                break
    except ConnectionError:
        pass
    finally:
        writer.close()


async def serve_tls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the ClientHello record, refuse the handshake, close."""
    try:
        header = await reader.readexactly(5)
        length = int.from_bytes(header[3:5], "big")
        await reader.readexactly(min(length, 16384))
        writer.write(TLS_HANDSHAKE_FAILURE)
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when the podtap that started it dies, even by
    SIGKILL, so that no demo service outlives its demo."""
    PR_SET_PDEATHSIG = 1
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request took effect
        sys.exit(0)


async def run(ports: Ports) -> None:
    http = HttpServer(Shop(rng=random.Random()))
    servers = [
        await asyncio.start_server(http.serve, host=None, port=ports.http, reuse_address=True),
        await asyncio.start_server(serve_cache, host=None, port=ports.cache, reuse_address=True),
        await asyncio.start_server(serve_tls, host=None, port=ports.tls, reuse_address=True),
    ]
    stop = asyncio.Event()
    grpc_server = await inventory.start_server(ports.grpc, random.Random())
    chat_server = await chat.start_server(ports.chat)
    catalog = asyncio.create_task(h2c.run_server(ports.h2c, stop))
    await _listening(ports.h2c)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print("ready", flush=True)
    await stop.wait()
    for server in servers:
        server.close()
    chat_server.close()
    await grpc_server.stop(0.5)
    await catalog


async def _listening(port: int, within: float = 10.0) -> None:
    """Wait until ``port`` accepts connections (Hypercorn binds it in its own time)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The podtap demo service.")
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--cache-port", type=int, default=7000)
    parser.add_argument("--tls-port", type=int, default=8443)
    parser.add_argument("--grpc-port", type=int, default=50051)
    parser.add_argument("--h2c-port", type=int, default=8081)
    parser.add_argument("--chat-port", type=int, default=8765)
    args = parser.parse_args(argv)
    _die_with_parent()
    ports = Ports(
        args.http_port,
        args.cache_port,
        args.tls_port,
        args.grpc_port,
        args.h2c_port,
        args.chat_port,
    )
    asyncio.run(run(ports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
