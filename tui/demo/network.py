"""The demo's network: a namespace joined to the host by a veth pair, made and unmade with `ip`.

Names carry the pid of the podtap that made them (``podtap-demo-PID``), so a later demo can tell
the leftovers of a killed one (its pid is gone) from those of a demo still running, and remove
them. Addresses come from 198.19.0.0/16 and fd00:7a9:de00::/40: benchmarking and private ranges
that never collide with a real network.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass

from agent.errors import UserError

PREFIX = "podtap-demo-"
_NAME = re.compile(rf"^{PREFIX}(\d+)$")


@dataclass(frozen=True)
class DemoNetwork:
    name: str
    host_interface: str
    namespace_interface: str
    host_ip: str
    service_ip: str
    host_ip6: str
    service_ip6: str

    @classmethod
    def for_pid(cls, pid: int) -> DemoNetwork:
        index = pid % 16384
        third, fourth = divmod(index * 4, 256)
        return cls(
            name=f"{PREFIX}{pid}",
            host_interface=f"ptd{pid}h",  # interface names are at most 15 characters
            namespace_interface=f"ptd{pid}n",
            host_ip=f"198.19.{third}.{fourth + 1}",
            service_ip=f"198.19.{third}.{fourth + 2}",
            host_ip6=f"fd00:7a9:de{index >> 8:02x}:{index & 0xFF:x}::1",
            service_ip6=f"fd00:7a9:de{index >> 8:02x}:{index & 0xFF:x}::2",
        )

    def exec_argv(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["unknown error"])[0]
        raise UserError(f"Could not set up the demo network (ip {' '.join(args)}: {reason}).")


def create(network: DemoNetwork) -> None:
    """Make the namespace and veth pair; on failure, leave nothing behind."""
    _ip("netns", "add", network.name)
    try:
        host, inside, name = network.host_interface, network.namespace_interface, network.name
        _ip("link", "add", host, "type", "veth", "peer", "name", inside, "netns", name)
        _ip("addr", "add", f"{network.host_ip}/30", "dev", host)
        _ip("-6", "addr", "add", f"{network.host_ip6}/64", "dev", host, "nodad")
        _ip("link", "set", host, "up")
        _ip("-n", name, "addr", "add", f"{network.service_ip}/30", "dev", inside)
        _ip("-n", name, "-6", "addr", "add", f"{network.service_ip6}/64", "dev", inside, "nodad")
        _ip("-n", name, "link", "set", inside, "up")
        _ip("-n", name, "link", "set", "lo", "up")
    except BaseException:
        remove(network)
        raise


def remove(network: DemoNetwork) -> None:
    """Delete the veth pair and the namespace; quiet about what is already gone."""
    subprocess.run(["ip", "link", "del", network.host_interface], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "del", network.name], capture_output=True, check=False)


def exists(network: DemoNetwork) -> bool:
    return os.path.exists(f"/run/netns/{network.name}")


def interface_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def remove_stale() -> list[str]:
    """Remove the networks of demos whose podtap no longer runs; return their names."""
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        return []
    removed = []
    for name in names:
        match = _NAME.match(name)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            remove(DemoNetwork.for_pid(int(match.group(1))))
            removed.append(name)
    return removed
