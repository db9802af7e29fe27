"""podtap on Kubernetes: targets to pods, agent pods next to them, streams through the API server.

The only package of podtap that talks to Kubernetes (the ``kubernetes`` client is imported here
and nowhere else).
"""

from __future__ import annotations

import argparse

from tui.sources.session import Session
from tui.targets import KubeTarget


def open_kube_session(target: KubeTarget, args: argparse.Namespace) -> Session:
    """The session for a Kubernetes target; agents start when it is entered."""
    from tui.sources.kube.session import KubeSession

    return KubeSession(target, args)
