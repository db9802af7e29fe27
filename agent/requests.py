"""What a client may ask of a node agent (protocol 2): tap a pod, stop tapping it.

A request is a binary websocket message holding one msgpack map with a ``type`` tag, sent on
the events websocket at any time. The agent answers in the event stream (``PodTapped``,
``PodTapFailed``, ``PodUntapped``), journaled like any event, so a client that reconnects learns
what happened while it was away. Requests are idempotent: tapping a pod that is already tapped
(with the same container) or untapping one that is not does nothing.
"""

from __future__ import annotations

from agent.codec import msgspec


class Request(msgspec.Struct, tag_field="type", kw_only=True):
    pass


class TapPod(Request, tag="tap"):
    """Capture the network namespace of ``container_id`` and name its connections ``pod``."""

    pod: str
    container_id: str


class UntapPod(Request, tag="untap"):
    pod: str


AnyRequest = TapPod | UntapPod

MAX_REQUEST_BYTES = 4096
"""A request is a pod name and a container id: anything longer is not one."""

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AnyRequest)


def encode_request(request: AnyRequest) -> bytes:
    return _encoder.encode(request)


def decode_request(message: bytes) -> AnyRequest:
    """Raises ``msgspec.DecodeError``/``msgspec.ValidationError`` on anything else."""
    return _decoder.decode(message)
