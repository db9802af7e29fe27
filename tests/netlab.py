"""Real network namespaces for tests: a namespace joined to the host by a veth pair.

Addresses come from the benchmarking ranges (198.18.0.0/15, and fd00:7a9::/48 for IPv6) so that
they never collide with a real network; each lab gets its own /30 and /64 by index.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

_counter = itertools.count(1)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass(frozen=True)
class Lab:
    """A namespace ``name`` whose veth end has ``ns_ip``/``ns_ip6``; the host side has
    ``host_ip``/``host_ip6``. Servers run inside with :meth:`popen`, clients on the host."""

    name: str
    host_ip: str
    ns_ip: str
    host_ip6: str
    ns_ip6: str

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    def command(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def popen(self, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.command(argv), **kwargs)  # type: ignore[call-overload]

    def run(self, argv: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(self.command(argv), check=True, **kwargs)  # type: ignore[call-overload]


@contextmanager
def network_lab(prefix: str = "pt") -> Iterator[Lab]:
    """Create a namespace + veth pair, IPv4 and IPv6, loopback up; remove them afterwards."""
    index = (os.getpid() * 7 + next(_counter)) % 16000
    name = f"{prefix}{os.getpid() % 100000}-{index}"
    host_if, ns_if = f"vh{index}", f"vn{index}"
    third, fourth = divmod(index * 4, 256)
    base = f"198.{18 + third // 256}.{third % 256}"
    lab = Lab(
        name=name,
        host_ip=f"{base}.{fourth + 1}",
        ns_ip=f"{base}.{fourth + 2}",
        host_ip6=f"fd00:7a9:{index:x}::1",
        ns_ip6=f"fd00:7a9:{index:x}::2",
    )
    _ip("netns", "add", name)
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", name)
        _ip("addr", "add", f"{lab.host_ip}/30", "dev", host_if)
        _ip("-6", "addr", "add", f"{lab.host_ip6}/64", "dev", host_if, "nodad")
        _ip("link", "set", host_if, "up")
        _ip("-n", name, "addr", "add", f"{lab.ns_ip}/30", "dev", ns_if)
        _ip("-n", name, "-6", "addr", "add", f"{lab.ns_ip6}/64", "dev", ns_if, "nodad")
        _ip("-n", name, "link", "set", ns_if, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        yield lab
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
