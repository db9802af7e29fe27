"""Find: smart-case literal text, looked for in every part of an exchange that is shown."""

from __future__ import annotations

import json

import pytest

from tui.model.find import make_needle, next_index
from tui.model.flows import Exchange, Request, Response, StreamMessage

pytestmark = pytest.mark.timeout(30)


def exchange(body: bytes = b"", header: tuple[str, str] = ("Accept", "*/*")) -> Exchange:
    request = Request(headers=[header], body=body, method="POST", target="/orders?id=1")
    response = Response(headers=[("Content-Type", "text/plain")], status=201, reason="Created")
    return Exchange(("local", 0), 0, request, response)


def test_smart_case_and_literal_text() -> None:
    lower = make_needle("order 4711")
    upper = make_needle("Order 4711")
    dotted = make_needle("a.c")
    assert lower is not None
    assert upper is not None
    assert dotted is not None
    assert lower.mentions(exchange(b'{"note": "ORDER 4711"}'))
    assert not upper.mentions(exchange(b'{"note": "ORDER 4711"}'))
    assert not dotted.mentions(exchange(b"abc"))
    assert make_needle("") is None


def test_every_shown_part_is_searched() -> None:
    def found(text: str, ex: Exchange) -> bool:
        needle = make_needle(text)
        assert needle is not None
        return needle.mentions(ex)

    assert found("post /orders", exchange())
    assert found("accept: */*", exchange())
    assert found("x-tenant", exchange(header=("X-Tenant", "acme")))
    assert found("201 created", exchange())
    assert found("text/plain", exchange())
    assert not found("nowhere", exchange(b"body"))
    ws = exchange()
    ws.messages.append(StreamMessage("out", 1.0, "text", b"price update 42", 15))
    assert found("update 42", ws)


def test_next_index_stops_at_either_end() -> None:
    assert next_index(0, None, True) is None
    assert next_index(3, None, True) == 0
    assert next_index(3, None, False) == 2
    assert next_index(3, 1, True) == 2
    assert next_index(3, 2, True) is None
    assert next_index(3, 0, False) is None


def test_next_mentioning_goes_round() -> None:
    from tui.model.find import next_mentioning

    exchanges = [exchange(b"x"), exchange(b"invoice 1"), exchange(b"y"), exchange(b"invoice 2")]
    needle = make_needle("invoice")
    assert needle is not None
    assert next_mentioning(exchanges, 1, needle, True) == 3
    assert next_mentioning(exchanges, 3, needle, True) == 1
    assert next_mentioning(exchanges, 1, needle, False) == 3
    assert next_mentioning(exchanges, None, needle, True) == 1
    assert next_mentioning(exchanges, None, needle, False) == 3
    lonely = make_needle("invoice 2")
    assert lonely is not None
    assert next_mentioning(exchanges, 3, lonely, True) is None
    assert next_mentioning([], None, needle, True) is None


def test_a_scan_in_slices_finds_what_one_pass_finds() -> None:
    from tui.model.find import ScanAround

    exchanges = [exchange(f"body {n}".encode()) for n in range(50)]
    exchanges[7] = exchange(b"invoice 7")
    needle = make_needle("invoice")
    assert needle is not None
    scan = ScanAround(exchanges, 20, needle, True)
    steps = 0
    while not scan.step(4):
        steps += 1
        assert 0 < scan.progress < 1
    assert scan.found == 7
    assert steps == (50 - 20 + 7) // 4
    nothing = ScanAround(exchanges, 7, needle, False)
    assert nothing.step(100)
    assert nothing.found is None
    assert nothing.progress == 1.0


def test_a_compressed_body_is_searched_decoded() -> None:
    import gzip

    zipped = exchange()
    assert zipped.response is not None
    zipped.response.headers.append(("Content-Encoding", "gzip"))
    zipped.response.body = gzip.compress(b"the invoice 4711 is paid")
    zipped.response.body_length = len(zipped.response.body)
    zipped.response.complete = True
    needle = make_needle("invoice 4711")
    assert needle is not None
    assert needle.mentions(zipped)


def test_slices_going_either_way_find_what_looking_one_by_one_finds() -> None:
    from tui.model.find import FindTexts, ScanAround

    exchanges = [exchange(f"body {n}".encode()) for n in range(23)]
    for n in (2, 11, 19):
        exchanges[n] = exchange(f"invoice {n}".encode())
    exchanges[5] = exchange(header=("X-Invoice", "5"))
    needle = make_needle("invoice")
    assert needle is not None
    texts = FindTexts()
    for current in (None, 0, 2, 5, 11, 18, 19, 22):
        for forward in (True, False):
            step = 1 if forward else -1
            start = (-1 if forward else 23) if current is None else current
            order = [(start + step * offset) % 23 for offset in range(1, 24)]
            if current is not None:
                order.pop()  # the current one is not looked at again
            expected = next((i for i in order if needle.mentions(exchanges[i])), None)
            for size in (1, 3, 7, 40):
                scan = ScanAround(exchanges, current, needle, forward, texts)
                while not scan.step(size):
                    pass
                assert scan.found == expected, (current, forward, size)


def test_texts_are_kept_once_final_and_within_the_budget() -> None:
    from tui.model.find import FindTexts

    texts = FindTexts(budget=400)
    finished = exchange()
    finished.request.complete = True
    finished.finished = 2.0
    waiting = exchange()
    head, lowered, _ = texts.exchange_parts(finished)
    assert head.startswith(b"POST /orders?id=1\nAccept: */*\n201 Created")
    assert lowered == head.lower()
    assert texts.exchange_parts(finished)[0] is head
    assert texts.exchange_parts(waiting)[0] is not texts.exchange_parts(waiting)[0]
    assert (len(texts), texts.size) == (1, 2 * len(head))
    # A response that replaced the one seen (h2c's upgrade) is looked at anew.
    finished.response = Response(headers=[("X-Later", "yes")], status=200, reason="OK")
    assert b"X-Later: yes" in texts.exchange_parts(finished)[0]
    assert texts.size == 2 * len(texts.exchange_parts(finished)[0])
    # So are messages that came since.
    finished.messages.append(StreamMessage("out", 1.0, "text", b"tick 7", 6))
    assert b"tick 7" in texts.exchange_parts(finished)[0]
    others = [exchange() for _ in range(10)]
    for other in others:
        other.request.complete = True
        other.finished = 3.0
        texts.exchange_parts(other)
    assert texts.size <= 400
    texts.keep_only(others[:1])
    assert len(texts) <= 1


def test_warming_makes_the_texts_a_look_then_reuses() -> None:
    from tui.model.find import FindTexts, ScanAround

    exchanges = [exchange(f"body {n}".encode()) for n in range(30)]
    for ex in exchanges:
        ex.request.complete = True
        ex.finished = 1.0
    texts = FindTexts()
    position = 0
    while position < len(exchanges):
        position = texts.warm(exchanges, position, 7)
    assert len(texts) == 30
    kept = texts.exchange_parts(exchanges[12])
    assert texts.columns(exchanges[12:13], folded=False) == ([kept[0]], [kept[2]])
    needle = make_needle("body 12")
    assert needle is not None
    scan = ScanAround(exchanges, 0, needle, True, texts)
    scan.step(100)
    assert scan.found == 12


# Secrets: find looks only through what the pane shows, masked unless revealed.

SECRET = "s3cr3t-v4lu3-0042"


def secret_exchanges() -> list[Exchange]:
    """A header, a JSON body, a WebSocket message and a gRPC string, each holding SECRET
    under a secret-looking name, and one exchange holding it in plain sight."""
    header = exchange(header=("Authorization", f"Bearer {SECRET}"))
    body = exchange(json.dumps({"user": "ann", "api_key": SECRET}).encode())
    assert body.response is not None
    body.response.body = json.dumps({"token": SECRET}).encode()
    websocket = exchange()
    text = json.dumps({"type": "auth", "password": SECRET}).encode()
    websocket.messages.append(StreamMessage("in", 1.0, "text", text, len(text)))
    grpc = exchange()
    field = f"session_token={SECRET}".encode()
    payload = b"\x0a" + bytes([len(field)]) + field  # field 1, a string
    grpc.messages.append(StreamMessage("in", 1.0, "grpc", payload, len(payload)))
    return [header, body, websocket, grpc]


def test_find_does_not_land_on_a_masked_secret() -> None:
    from tui.model.find import FindTexts, ScanAround

    needle = make_needle(SECRET[:10])
    assert needle is not None
    for ex in secret_exchanges():
        assert not needle.mentions(ex), ex
        assert needle.mentions(ex, reveal=True), ex
    plain = exchange(f"the value {SECRET} in plain sight".encode())
    listed = [*secret_exchanges(), plain]
    for reveal, expected in ((False, 4), (True, 0)):
        texts = FindTexts(reveal=reveal)
        scan = ScanAround(listed, None, needle, True, texts)
        scan.step(len(listed))
        assert scan.found == expected
    # The mask itself is what is shown: looking for it finds the masked ones.
    dots = make_needle("••••••")
    assert dots is not None
    assert all(dots.mentions(ex) for ex in secret_exchanges())


def test_texts_follow_the_reveal_switch() -> None:
    from tui.model.find import FindTexts, ScanAround

    needle = make_needle(SECRET)
    assert needle is not None
    listed = secret_exchanges()
    for ex in listed:
        ex.request.complete = True
        ex.finished = 1.0
    texts = FindTexts()
    assert texts.warm(listed, 0, 10) == len(listed)
    scan = ScanAround(listed, None, needle, True, texts)
    assert scan.step(10)
    assert scan.found is None
    texts.show_secrets(True)
    assert len(texts) == 0
    scan = ScanAround(listed, None, needle, True, texts)
    assert scan.step(10)
    assert scan.found == 0
