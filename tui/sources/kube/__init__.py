"""podtap on Kubernetes: targets to pods, agent pods next to them, streams through the API server.

The only package of podtap that talks to Kubernetes (the ``kubernetes`` client is imported here
and nowhere else).
"""

from __future__ import annotations

from tui.sources.kube.options import KubeOptions
from tui.sources.session import Session
from tui.targets import KubeTarget


def open_kube_session(target: KubeTarget, options: KubeOptions) -> Session:
    """The session for a Kubernetes target; agents start when it is entered: one per node, or
    with ``ephemeral`` one inside each pod."""
    if options.ephemeral:
        from tui.sources.kube.ephemeral_session import EphemeralSession

        return EphemeralSession(target, options)
    from tui.sources.kube.node_session import NodeSession

    return NodeSession(target, options)
