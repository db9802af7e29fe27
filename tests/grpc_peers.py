"""A real grpcio server and client for the gRPC tests: every kind of call, an error, gzip.

Messages are protobuf's own well-known types, so no generated code is needed: requests are
``StringValue``; answers are ``Struct`` (nested messages), ``Int64Value`` and
``SourceCodeInfo.Location`` (packed repeated ints). ``python -m tests.grpc_peers serve PORT``
runs the server (in a network namespace for the capture tests); ``... call ADDRESS`` makes every
call once and prints what the client saw as JSON; ``... session ADDRESS`` keeps one connection
and makes a unary call per name read from stdin; ``... gzip ADDRESS NAME`` makes one with gzip.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, struct_pb2, wrappers_pb2

SERVICE = "podtap.demo.Greeter"
NOT_FOUND_MESSAGE = "no such person: nobody"


def greeting(name: str) -> struct_pb2.Struct:
    answer = struct_pb2.Struct()
    answer.update({"greeting": f"hello {name}", "count": len(name)})
    return answer


def _say_hello(request: wrappers_pb2.StringValue, context: Any) -> struct_pb2.Struct:
    if request.value == "nobody":
        context.abort(grpc.StatusCode.NOT_FOUND, NOT_FOUND_MESSAGE)
    return greeting(request.value)


def _count(request: wrappers_pb2.StringValue, context: Any) -> Iterator[wrappers_pb2.Int64Value]:
    for number in range(1, len(request.value) + 1):
        yield wrappers_pb2.Int64Value(value=number * 1000)


def _sum(requests: Iterator[wrappers_pb2.StringValue], context: Any) -> Any:
    lengths = [len(request.value) for request in requests]
    return descriptor_pb2.SourceCodeInfo.Location(path=lengths, span=[sum(lengths)])


def _chat(
    requests: Iterator[wrappers_pb2.StringValue], context: Any
) -> Iterator[wrappers_pb2.StringValue]:
    for request in requests:
        yield wrappers_pb2.StringValue(value=request.value.upper())


def start_server(port: int = 0, host: str = "127.0.0.1") -> tuple[grpc.Server, int]:
    string = wrappers_pb2.StringValue
    handlers = {
        "SayHello": grpc.unary_unary_rpc_method_handler(
            _say_hello, string.FromString, struct_pb2.Struct.SerializeToString
        ),
        "Count": grpc.unary_stream_rpc_method_handler(
            _count, string.FromString, wrappers_pb2.Int64Value.SerializeToString
        ),
        "Sum": grpc.stream_unary_rpc_method_handler(
            _sum, string.FromString, descriptor_pb2.SourceCodeInfo.Location.SerializeToString
        ),
        "Chat": grpc.stream_stream_rpc_method_handler(
            _chat, string.FromString, string.SerializeToString
        ),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    return server, bound


def _method(channel: grpc.Channel, kind: str, name: str, answer: Any) -> Any:
    factory = getattr(channel, kind)
    return factory(
        f"/{SERVICE}/{name}",
        request_serializer=wrappers_pb2.StringValue.SerializeToString,
        response_deserializer=answer.FromString,
    )


def unary(channel: grpc.Channel, name: str) -> dict[str, Any]:
    answer = _method(channel, "unary_unary", "SayHello", struct_pb2.Struct)(
        wrappers_pb2.StringValue(value=name)
    )
    return dict(answer)


def run_all_calls(address: str) -> dict[str, Any]:
    """Each kind of call once, in this order; what the client got back."""
    seen: dict[str, Any] = {}
    with grpc.insecure_channel(address) as channel:
        seen["unary"] = unary(channel, "alice")
        count = _method(channel, "unary_stream", "Count", wrappers_pb2.Int64Value)
        seen["server_streaming"] = [m.value for m in count(wrappers_pb2.StringValue(value="abc"))]
        total = _method(channel, "stream_unary", "Sum", descriptor_pb2.SourceCodeInfo.Location)
        words = [wrappers_pb2.StringValue(value=w) for w in ("one", "three", "fifteen")]
        location = total(iter(words))
        seen["client_streaming"] = {"path": list(location.path), "span": list(location.span)}
        chat = _method(channel, "stream_stream", "Chat", wrappers_pb2.StringValue)
        seen["bidi"] = [m.value for m in chat(iter(words))]
        try:
            unary(channel, "nobody")
        except grpc.RpcError as error:
            seen["error"] = [error.code().name, error.details()]
    return seen


def main(argv: list[str]) -> None:
    if argv[0] == "serve":
        server, _ = start_server(int(argv[1]), host=argv[2] if len(argv) > 2 else "0.0.0.0")
        print("ready", flush=True)
        server.wait_for_termination()
    elif argv[0] == "call":
        print(json.dumps(run_all_calls(argv[1])))
    elif argv[0] == "session":
        # One channel (one connection) kept open; a unary call per name read from stdin.
        with grpc.insecure_channel(argv[1]) as channel:
            for line in sys.stdin:
                print(json.dumps(unary(channel, line.strip())), flush=True)
    elif argv[0] == "gzip":
        with grpc.insecure_channel(argv[1], compression=grpc.Compression.Gzip) as channel:
            print(json.dumps(unary(channel, argv[2])))


if __name__ == "__main__":
    main(sys.argv[1:])
