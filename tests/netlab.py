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

from tui.demo.network import DemoNetwork, create, remove

_counter = itertools.count(1)


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
    third, fourth = divmod(index * 4, 256)
    base = f"198.{18 + third // 256}.{third % 256}"
    lab = Lab(
        name=name,
        host_ip=f"{base}.{fourth + 1}",
        ns_ip=f"{base}.{fourth + 2}",
        host_ip6=f"fd00:7a9:{index:x}::1",
        ns_ip6=f"fd00:7a9:{index:x}::2",
    )
    network = DemoNetwork(
        name=name,
        host_interface=f"vh{index}",
        namespace_interface=f"vn{index}",
        host_ip=lab.host_ip,
        service_ip=lab.ns_ip,
        host_ip6=lab.host_ip6,
        service_ip6=lab.ns_ip6,
    )
    create(network)  # the same namespace + veth pair the demo makes, at the lab's addresses
    try:
        yield lab
    finally:
        remove(network)
