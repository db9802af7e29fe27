"""What a simulated cluster starts with, and the command-line syntax for it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Workload:
    namespace: str
    name: str
    replicas: int
    port: int


@dataclass
class SimConfig:
    nodes: int = 2
    deployments: list[Workload] = field(default_factory=list)
    statefulsets: list[Workload] = field(default_factory=list)
    daemonsets: list[Workload] = field(default_factory=list)
    jobs: list[Workload] = field(default_factory=list)
    cronjobs: list[Workload] = field(default_factory=list)
    pods: list[Workload] = field(default_factory=list)
    services: list[tuple[str, str]] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    pod_security: dict[str, str] = field(default_factory=dict)
    deny: list[str] = field(default_factory=list)
    fail_images: list[str] = field(default_factory=list)
    sidecar: str | None = None
    user: str = "podtap-test"
    api_port: int = 0


def _namespaced(text: str) -> tuple[str, str]:
    namespace, _, name = text.rpartition("/")
    return namespace or "default", name


def parse_workload(text: str, *, with_count: bool) -> Workload:
    """``NS/NAME=COUNT:PORT`` (count-bearing kinds) or ``NS/NAME:PORT``; NS defaults to
    ``default``, COUNT to 1, PORT to 8080."""
    head, _, port = text.partition(":")
    count = "1"
    if with_count and "=" in head:
        head, _, count = head.partition("=")
    namespace, name = _namespaced(head)
    if not name:
        raise argparse.ArgumentTypeError(f"no workload name in {text!r}")
    try:
        return Workload(namespace, name, int(count), int(port or 8080))
    except ValueError as bad:
        raise argparse.ArgumentTypeError(f"bad count or port in {text!r}") from bad


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m tests.kubesim",
        description="A simulated Kubernetes cluster whose pods are real network namespaces "
        "and processes on this host (root).",
    )
    cli.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig")
    cli.add_argument("--nodes", type=int, default=2)
    cli.add_argument("--port", type=int, default=0, help="API server port (default: any)")
    cli.add_argument(
        "--deployment",
        action="append",
        default=[],
        metavar="NS/NAME=N:PORT",
        type=lambda t: parse_workload(t, with_count=True),
    )
    cli.add_argument(
        "--statefulset",
        action="append",
        default=[],
        metavar="NS/NAME=N:PORT",
        type=lambda t: parse_workload(t, with_count=True),
    )
    cli.add_argument(
        "--daemonset",
        action="append",
        default=[],
        metavar="NS/NAME:PORT",
        type=lambda t: parse_workload(t, with_count=False),
    )
    cli.add_argument(
        "--job",
        action="append",
        default=[],
        metavar="NS/NAME:PORT",
        type=lambda t: parse_workload(t, with_count=False),
    )
    cli.add_argument(
        "--cronjob",
        action="append",
        default=[],
        metavar="NS/NAME=JOBS:PORT",
        type=lambda t: parse_workload(t, with_count=True),
    )
    cli.add_argument(
        "--pod",
        action="append",
        default=[],
        metavar="NS/NAME:PORT",
        type=lambda t: parse_workload(t, with_count=False),
    )
    cli.add_argument("--service", action="append", default=[], metavar="NS/NAME", type=_namespaced)
    cli.add_argument("--namespace", action="append", default=[], metavar="NS")
    cli.add_argument(
        "--pod-security",
        action="append",
        default=[],
        metavar="NS=LEVEL",
        help="label NS with pod-security.kubernetes.io/enforce=LEVEL",
    )
    cli.add_argument(
        "--deny",
        action="append",
        default=[],
        metavar="VERB:RESOURCE",
        help="RBAC-deny a verb on a resource, e.g. create:jobs, create:pods/portforward",
    )
    cli.add_argument(
        "--fail-image",
        action="append",
        default=[],
        metavar="PATTERN",
        help="image pulls fail for images containing or matching PATTERN",
    )
    cli.add_argument(
        "--sidecar",
        help="add a sidecar container with this name first in "
        "every workload pod (e.g. istio-proxy)",
    )
    cli.add_argument("--user", default="podtap-test")
    return cli


def config_from_args(args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        nodes=args.nodes,
        deployments=args.deployment,
        statefulsets=args.statefulset,
        daemonsets=args.daemonset,
        jobs=args.job,
        cronjobs=args.cronjob,
        pods=args.pod,
        services=args.service,
        namespaces=args.namespace,
        pod_security=dict(item.split("=", 1) for item in args.pod_security),
        deny=args.deny,
        fail_images=args.fail_image,
        sidecar=args.sidecar,
        user=args.user,
        api_port=args.port,
    )
