"""Pod networking: one bridge per simulator with a /23 in 198.19.0.0/16 (508 pods: 300 replicas
and their node agents fit), and per pod a network namespace joined to the bridge by a veth
pair, so every pod IP is reachable from the host."""

from __future__ import annotations

import ctypes
import fcntl
import itertools
import os
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tests.kubesim.errors import ApiError
from tests.kubesim.sweep import sweep_abandoned_netns, sweep_stale_cgroups

CLONE_NEWNET = 0x40000000
_SLOT_DIR = Path("/run/kubesim")


def _ip(*args: str, stdin: str | None = None) -> None:
    result = subprocess.run(["ip", *args], input=stdin, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


@dataclass(frozen=True)
class PodNetns:
    name: str
    ip: str
    host_interface: str
    path: str


class PodNetwork:
    """The simulator's pod network. Its /23 is chosen by holding the lock files of both its
    /24 halves, so simulators running side by side never share addresses."""

    def __init__(self) -> None:
        self._slot, self._locks = self._claim_slots()
        self.bridge = f"ksb{self._slot}"
        self.gateway = f"198.19.{self._slot}.1"
        self._hosts = itertools.count(2)
        self._free: list[int] = []
        self._counter = itertools.count(1)
        self._netns: dict[str, PodNetns] = {}
        self._mutex = threading.Lock()

    @staticmethod
    def _claim_slots() -> tuple[int, list[IO[str]]]:
        """An even /24 slot and the next one, both locked."""
        _SLOT_DIR.mkdir(parents=True, exist_ok=True)
        for slot in range(0, 256, 2):
            held: list[IO[str]] = []
            for half in (slot, slot + 1):
                handle = open(_SLOT_DIR / f"slot-{half}.lock", "w")  # noqa: SIM115 - held for life
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.close()
                    break
                held.append(handle)
            if len(held) == 2:
                return slot, held
            for handle in held:
                handle.close()
        raise RuntimeError("no free 198.19.x.0/23 pod network: 128 simulators are running")

    def _address(self, host: int) -> str:
        """Host number 2..509 of the /23 as an address."""
        return f"198.19.{self._slot + host // 256}.{host % 256}"

    def start(self) -> None:
        sweep_abandoned_netns()
        sweep_stale_cgroups()
        # A bridge left by a simulator that was killed hard would hold our addresses.
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/23", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def attach(self, label: str) -> PodNetns:
        """A new network namespace with an address on the pod network (blocking)."""
        with self._mutex:
            host = self._free.pop(0) if self._free else next(self._hosts)
            if host > 509:
                raise ApiError(500, "InternalError", "the simulated pod network is full")
            index = next(self._counter)
        name = f"kubesim{os.getpid()}-{index}-{label}"[:60]
        netns = PodNetns(name, self._address(host), f"ks{self._slot}v{index}", f"/run/netns/{name}")
        _ip("netns", "add", netns.name)
        try:
            _ip(
                "link",
                "add",
                netns.host_interface,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                netns.name,
            )
            _ip("link", "set", netns.host_interface, "master", self.bridge, "up")
            _ip(
                "-n",
                netns.name,
                "-batch",
                "-",
                stdin="\n".join(
                    [
                        f"addr add {netns.ip}/23 dev eth0",
                        "link set eth0 up",
                        "link set lo up",
                        f"route add default via {self.gateway}",
                    ]
                )
                + "\n",
            )
        except Exception:
            self._remove(netns)
            raise
        with self._mutex:
            self._netns[netns.name] = netns
        return netns

    def host(self) -> PodNetns:
        """The node's own network namespace, for hostNetwork pods: the pod IP is the node's."""
        return PodNetns("", self.gateway, "", f"/proc/{os.getpid()}/ns/net")

    def detach(self, netns: PodNetns) -> None:
        if not netns.host_interface:
            return  # the node's namespace is not the pod's to remove
        self._remove(netns)
        with self._mutex:
            if self._netns.pop(netns.name, None) is not None:
                third, fourth = netns.ip.split(".")[2:]
                self._free.append((int(third) - self._slot) * 256 + int(fourth))

    @staticmethod
    def _remove(netns: PodNetns) -> None:
        subprocess.run(["ip", "link", "del", netns.host_interface], capture_output=True)
        subprocess.run(["ip", "netns", "del", netns.name], capture_output=True)

    def stop(self) -> None:
        for netns in list(self._netns.values()):
            self.detach(netns)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        for lock in self._locks:
            lock.close()


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def connect_in_netns(netns_path: str, host: str, port: int, timeout: float = 5.0) -> socket.socket:
    """A TCP connection opened from inside a network namespace. ``setns`` changes only the
    calling thread, so it runs in a thread of its own; the socket stays in that namespace."""
    outcome: list[socket.socket | BaseException] = []

    def run() -> None:
        try:
            with open(netns_path) as target:
                _setns(target.fileno())
            outcome.append(socket.create_connection((host, port), timeout=timeout))
        except BaseException as error:  # handed to the caller's thread
            outcome.append(error)

    thread = threading.Thread(target=run, name="kubesim-netns-connect", daemon=True)
    thread.start()
    thread.join()
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    result.settimeout(None)
    return result
