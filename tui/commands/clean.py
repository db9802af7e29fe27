"""`podtap clean`: delete agent Jobs and pods that a killed podtap left behind."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "clean",
        help="delete leftover podtap agents from the cluster",
        description="Delete every podtap agent Job and pod (label "
        "app.kubernetes.io/name=podtap-agent), in one namespace or in all of them.",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", help="namespace to clean (default: context's)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="clean every namespace")
    parser.add_argument("--context", help="kubeconfig context to use")
    parser.add_argument("--kubeconfig", help="path to the kubeconfig file")
    parser.add_argument(
        "--dry-run", action="store_true", help="list what would be deleted, delete nothing"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tui.sources.kube.cleaning import clean_leftovers

    return clean_leftovers(
        kubeconfig=args.kubeconfig,
        context=args.context,
        namespace=args.namespace,
        all_namespaces=args.all_namespaces,
        dry_run=args.dry_run,
    )
