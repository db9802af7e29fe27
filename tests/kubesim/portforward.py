"""Pod port-forward over a ``v4.channel.k8s.io`` websocket, as kubelet streams it: per
requested port a data channel (2*i) and an error channel (2*i+1), each opened by a frame that
carries the port number (little-endian), then channel-prefixed data frames."""

from __future__ import annotations

import asyncio
import contextlib
import struct

from aiohttp import WSMsgType, web

from tests.kubesim.cluster import Cluster
from tests.kubesim.errors import ApiError
from tests.kubesim.network import connect_in_netns
from tests.kubesim.resources import POD

PROTOCOL = "v4.channel.k8s.io"
CHUNK = 64 * 1024


def _ports(request: web.Request) -> list[int]:
    ports = []
    for value in request.query.getall("ports", []):
        for item in value.split(","):
            try:
                port = int(item)
            except ValueError as bad:
                raise ApiError.bad_request(f'unable to parse "{item}" as a port') from bad
            if not 0 < port < 65536:
                raise ApiError.bad_request(f"port {port} must be between 1 and 65535")
            ports.append(port)
    if not ports:
        raise ApiError.bad_request("at least one port must be specified")
    return ports


async def serve_port_forward(
    request: web.Request, cluster: Cluster, namespace: str, name: str
) -> web.StreamResponse:
    pod = cluster.store.require(POD, namespace, name)
    runtime = cluster.kubelet.runtimes.get(pod["metadata"]["uid"])
    if runtime is None or runtime.netns is None or pod["status"].get("phase") != "Running":
        phase = pod["status"].get("phase", "Pending")
        raise ApiError.bad_request(
            f"unable to upgrade connection: pod is not running - current status {phase}"
        )
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise ApiError.bad_request("Upgrade request required")
    ports = _ports(request)
    websocket = web.WebSocketResponse(protocols=(PROTOCOL,), autoping=True)
    await websocket.prepare(request)
    cluster.port_forwards[id(request)] = (request.transport, namespace, name)
    send_lock = asyncio.Lock()

    async def send(channel: int, payload: bytes) -> None:
        async with send_lock:
            await websocket.send_bytes(bytes([channel]) + payload)

    for index, port in enumerate(ports):
        await send(2 * index, struct.pack("<H", port))
        await send(2 * index + 1, struct.pack("<H", port))

    writers: dict[int, asyncio.StreamWriter] = {}
    pumps: list[asyncio.Task[None]] = []
    netns_path = runtime.netns.path

    async def pump(index: int, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(CHUNK):
                await send(2 * index, chunk)
        # The pod side closed: like kubelet, end the whole stream.
        await websocket.close()

    for index, port in enumerate(ports):
        try:
            sock = await asyncio.to_thread(connect_in_netns, netns_path, "127.0.0.1", port)
        except OSError as refused:
            explanation = (
                f"error forwarding port {port} to pod {pod['metadata']['uid']}, uid : "
                f'failed to execute portforward in network namespace "{netns_path}": '
                f"failed to connect to localhost:{port} inside namespace "
                f'"{pod["metadata"]["uid"]}", IPv4: dial tcp4 127.0.0.1:{port}: '
                f"connect: {(refused.strerror or str(refused)).lower()}"
            )
            await send(2 * index + 1, explanation.encode())
            continue
        reader, writer = await asyncio.open_connection(sock=sock)
        writers[index] = writer
        pumps.append(asyncio.create_task(pump(index, reader)))

    if not writers:
        cluster.port_forwards.pop(id(request), None)
        await websocket.close()
        return websocket
    try:
        async for message in websocket:
            if message.type != WSMsgType.BINARY or not message.data:
                continue
            channel, payload = message.data[0], message.data[1:]
            target = writers.get(channel // 2)
            if channel % 2 == 0 and target is not None and payload:
                target.write(payload)
                with contextlib.suppress(ConnectionError):
                    await target.drain()
    finally:
        cluster.port_forwards.pop(id(request), None)
        for task in pumps:
            task.cancel()
        for opened in writers.values():
            opened.close()
    return websocket
