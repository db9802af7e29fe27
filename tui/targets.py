"""The target grammar shared by the app, ``dump`` and ``record`` (see DESIGN.md).

Kubernetes: ``KIND/NAME[/container/CNAME]`` or ``label/k=v,k2=v2[/container/CNAME]``.
Local: ``pid/PID``, ``netns/NAME_OR_PATH``, ``host``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LocalKind = Literal["pid", "netns", "host"]

KUBE_KINDS: dict[str, str] = {
    "pod": "pod",
    "po": "pod",
    "deployment": "deployment",
    "deploy": "deployment",
    "statefulset": "statefulset",
    "sts": "statefulset",
    "daemonset": "daemonset",
    "ds": "daemonset",
    "replicaset": "replicaset",
    "rs": "replicaset",
    "job": "job",
    "cronjob": "cronjob",
    "cj": "cronjob",
    "service": "service",
    "svc": "service",
    "label": "label",
}


class TargetError(ValueError):
    """A target string that does not follow the grammar; the message says what would."""


@dataclass(frozen=True)
class LocalTarget:
    kind: LocalKind
    value: str = ""

    def __str__(self) -> str:
        return self.kind if self.kind == "host" else f"{self.kind}/{self.value}"


@dataclass(frozen=True)
class KubeTarget:
    kind: str
    """Canonical kind: pod, deployment, statefulset, daemonset, replicaset, job, cronjob,
    service or label."""
    name: str
    """The object's name, or for ``label`` the selector ``k=v,k2=v2``."""
    container: str | None = None

    def __str__(self) -> str:
        base = f"{self.kind}/{self.name}"
        return f"{base}/container/{self.container}" if self.container else base


Target = LocalTarget | KubeTarget

_USAGE = (
    "use pod/NAME, deployment/NAME, statefulset/NAME, daemonset/NAME, replicaset/NAME, "
    "job/NAME, cronjob/NAME, service/NAME or label/k=v (optionally /container/NAME), "
    "or pid/PID, netns/NAME or host"
)


def parse_target(text: str) -> Target:
    if text == "host":
        return LocalTarget("host")
    kind, sep, rest = text.partition("/")
    if not sep or not rest:
        raise TargetError(f"{text!r} is not a target: {_USAGE}.")
    if kind == "pid":
        if not rest.isdigit() or int(rest) <= 0:
            raise TargetError(f"{text!r}: a pid is a positive number, as in pid/1234.")
        return LocalTarget("pid", rest)
    if kind == "netns":
        return LocalTarget("netns", rest)
    canonical = KUBE_KINDS.get(kind.lower())
    if canonical is None:
        raise TargetError(f"{kind!r} is not a kind of target: {_USAGE}.")
    name, sep, container_part = rest.partition("/container/")
    if sep and not container_part:
        raise TargetError(f"{text!r}: name the container after /container/.")
    if not name or "/" in name:
        raise TargetError(f"{text!r}: expected {kind}/NAME[/container/CNAME].")
    if canonical == "label" and "=" not in name:
        raise TargetError(f"{text!r}: a label target is label/key=value[,key2=value2].")
    return KubeTarget(canonical, name, container_part or None)


def parse_port(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise TargetError(f"port {text!r} is not a number: use a number from 1 to 65535.")
    if not 1 <= int(text) <= 65535:
        raise TargetError(f"port {text!r} is out of range: use a number from 1 to 65535.")
    return int(text)
