"""What a TLS ClientHello says in clear text: server name (SNI), ALPN protocols, version."""

from __future__ import annotations

from tui.model.flows import TlsInfo

_HANDSHAKE = 0x16
_CLIENT_HELLO = 0x01
_EXT_SERVER_NAME = 0x0000
_EXT_ALPN = 0x0010
_EXT_SUPPORTED_VERSIONS = 0x002B
_VERSIONS = {
    0x0300: "SSL 3.0",
    0x0301: "TLS 1.0",
    0x0302: "TLS 1.1",
    0x0303: "TLS 1.2",
    0x0304: "TLS 1.3",
}
_MAX_HELLO = 1 << 16


class NeedMoreData(Exception):
    """The ClientHello is not complete yet."""


class NotTls(Exception):
    """These bytes are not a TLS ClientHello."""


def looks_like_tls_record(data: bytes) -> bool:
    """A TLS record header: handshake (0x16) or application data (0x17), version 3.x."""
    return len(data) >= 3 and data[0] in (0x16, 0x17) and data[1] == 0x03 and data[2] <= 0x04


def parse_client_hello(data: bytes) -> TlsInfo:
    """Parse the ClientHello at the start of a client's stream.

    Raises NeedMoreData while it is incomplete, NotTls if it is not one.
    """
    handshake = _handshake_bytes(data)
    if len(handshake) < 4:
        raise NeedMoreData
    if handshake[0] != _CLIENT_HELLO:
        raise NotTls
    length = int.from_bytes(handshake[1:4], "big")
    if length > _MAX_HELLO:
        raise NotTls
    if len(handshake) < 4 + length:
        raise NeedMoreData
    return _parse_hello_body(handshake[4 : 4 + length])


def _handshake_bytes(data: bytes) -> bytes:
    """The handshake payload carried by the leading records (a hello may span several)."""
    if not data:
        raise NeedMoreData
    if data[0] != _HANDSHAKE or (len(data) > 1 and data[1] != 0x03):
        raise NotTls
    payload = bytearray()
    offset = 0
    while offset + 5 <= len(data) and data[offset] == _HANDSHAKE:
        length = int.from_bytes(data[offset + 3 : offset + 5], "big")
        payload += data[offset + 5 : offset + 5 + length]
        offset += 5 + length
    return bytes(payload)


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, count: int) -> bytes:
        end = self.offset + count
        if end > len(self.data):
            raise NotTls
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int) -> bytes:
        return self.take(self.number(length_size))

    @property
    def done(self) -> bool:
        return self.offset >= len(self.data)


def _parse_hello_body(body: bytes) -> TlsInfo:
    cursor = _Cursor(body)
    legacy_version = cursor.number(2)
    cursor.take(32)  # random
    cursor.vector(1)  # session id
    cursor.vector(2)  # cipher suites
    cursor.vector(1)  # compression methods
    info = TlsInfo(version=_VERSIONS.get(legacy_version, f"0x{legacy_version:04x}"))
    if cursor.done:
        return info
    extensions = _Cursor(cursor.vector(2))
    while not extensions.done:
        kind = extensions.number(2)
        content = _Cursor(extensions.vector(2))
        if kind == _EXT_SERVER_NAME:
            names = _Cursor(content.vector(2))
            while not names.done:
                name_type = names.number(1)
                name = names.vector(2)
                if name_type == 0:
                    info.sni = name.decode("ascii", "replace")
        elif kind == _EXT_ALPN:
            protocols = _Cursor(content.vector(2))
            while not protocols.done:
                info.alpn.append(protocols.vector(1).decode("ascii", "replace"))
        elif kind == _EXT_SUPPORTED_VERSIONS:
            versions = _Cursor(content.vector(1))
            offered = [versions.number(2) for _ in range(len(versions.data) // 2)]
            # GREASE values (0x?a?a) are ignored by taking the highest known version.
            known = [v for v in offered if v in _VERSIONS]
            if known:
                info.version = _VERSIONS[max(known)]
    return info
