"""The options of a Kubernetes session, typed and checked once by the command that parses them.

Every default is declared here and only here: the command line shows these values in its help.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent import __version__

DEFAULT_AGENT_IMAGE = f"podtap-agent:{__version__}"


@dataclass(frozen=True, slots=True)
class KubeOptions:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    """Of the target; None: the kubeconfig context's."""
    ports: tuple[int, ...] = ()
    """Empty: the container's containerPorts."""
    max_pods: int | None = None
    agent_namespace: str | None = None
    """Where agent pods run; None: the target's namespace."""
    agent_image: str = DEFAULT_AGENT_IMAGE
    privileged: bool = False
    ephemeral: bool = False
    """One agent inside each pod (an ephemeral container) instead of one per node."""
    agent_timeout: float = 60.0
    """Seconds an agent may take to answer before its pods are reported untappable."""
    agent_idle_timeout: int = 30
    """Seconds an agent outlives a podtap that vanished."""
    api_concurrency: int = 8
    """API calls (and port-forwards being opened) in flight at once."""


DEFAULTS = KubeOptions()
