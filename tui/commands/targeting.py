"""Arguments every target-taking command shares, and opening a session on the target."""

from __future__ import annotations

import argparse

from agent.errors import UserError
from tui.sources.kube.options import (
    DEFAULTS,
    PODTAP_AGENT_IMAGE,
    STOCK_PYTHON_IMAGE,
    KubeOptions,
)
from tui.sources.session import Session
from tui.targets import KubeTarget, LocalTarget, parse_port, parse_target


def parse_mebibytes(text: str) -> int:
    """A whole number of MiB above 0, in bytes."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of MiB above 0, not {text!r}")
    return int(text) << 20


def store_options(args: argparse.Namespace) -> dict[str, int]:
    """The Store arguments the command line chose (none: the store's defaults)."""
    budget = getattr(args, "body_budget", None)
    return {} if budget is None else {"body_budget": budget}


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        type=parse_target_arg,
        help="what to tap: pid/PID, netns/NAME, host, pod/NAME, deployment/NAME, "
        "service/NAME, label/k=v, ... (optionally /container/NAME)",
    )
    parser.add_argument(
        "-p",
        "--port",
        dest="ports",
        type=parse_port_arg,
        action="append",
        default=[],
        help="TCP port the service listens on (repeatable; Kubernetes default: containerPorts)",
    )
    parser.add_argument(
        "--body-budget",
        type=parse_mebibytes,
        default=None,
        metavar="MIB",
        help="memory for the bodies of decoded requests and responses, in MiB; past it the "
        "oldest are let go, their sizes kept (default: 256)",
    )
    kube = parser.add_argument_group("Kubernetes")
    kube.add_argument("-n", "--namespace", help="namespace of the target (default: context's)")
    kube.add_argument("--context", help="kubeconfig context to use")
    kube.add_argument("--kubeconfig", help="path to the kubeconfig file")
    kube.add_argument(
        "--max-pods",
        type=int,
        metavar="N",
        help="tap at most N ready pods of the target (default: all)",
    )
    kube.add_argument(
        "--agent-namespace",
        metavar="NS",
        help="where agent pods run (default: the target's namespace)",
    )
    kube.add_argument(
        "--agent-image",
        metavar="IMAGE",
        help=f"agent image (default: {STOCK_PYTHON_IMAGE}, with the agent's code "
        f"in a ConfigMap; with --agent-from-image: {PODTAP_AGENT_IMAGE})",
    )
    kube.add_argument(
        "--agent-from-image",
        action="store_true",
        help="the agent image has podtap installed (built from the Dockerfile): no ConfigMap",
    )
    kube.add_argument(
        "--privileged",
        action="store_true",
        help="run agent pods privileged instead of with added capabilities",
    )
    kube.add_argument(
        "--ephemeral",
        action="store_true",
        help="add the agent to each pod as an ephemeral container, instead of "
        "one agent Job per node (for clusters that forbid hostPID)",
    )
    kube.add_argument(
        "--agent-timeout",
        type=float,
        default=DEFAULTS.agent_timeout,
        metavar="SECONDS",
        help="how long to wait for an agent to start (default: %(default)g)",
    )
    kube.add_argument(
        "--agent-idle-timeout",
        type=int,
        default=DEFAULTS.agent_idle_timeout,
        metavar="SECONDS",
        help="how long an agent outlives a podtap that vanished (default: %(default)s)",
    )


def parse_target_arg(text: str) -> LocalTarget | KubeTarget:
    try:
        return parse_target(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_port_arg(text: str) -> int:
    try:
        return parse_port(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def open_session(args: argparse.Namespace) -> Session:
    """The session for ``args.target``; agents start when it is entered."""
    target = args.target
    if isinstance(target, LocalTarget):
        from tui.sources.local import LocalSession

        return LocalSession(target, args.ports)
    from tui.sources.kube import open_kube_session

    return open_kube_session(target, kube_options(args))


def kube_options(args: argparse.Namespace) -> KubeOptions:
    """The Kubernetes options of a parsed command line, checked."""
    if args.max_pods is not None and args.max_pods < 1:
        raise UserError("--max-pods must be at least 1.")
    if args.agent_timeout <= 0:
        raise UserError("--agent-timeout must be more than 0 seconds.")
    return KubeOptions(
        kubeconfig=args.kubeconfig,
        context=args.context,
        namespace=args.namespace,
        ports=tuple(args.ports),
        max_pods=args.max_pods,
        agent_namespace=args.agent_namespace,
        agent_image=args.agent_image,
        agent_from_image=args.agent_from_image,
        privileged=args.privileged,
        ephemeral=args.ephemeral,
        agent_timeout=args.agent_timeout,
        agent_idle_timeout=args.agent_idle_timeout,
    )
