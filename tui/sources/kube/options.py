"""The options of a Kubernetes session, typed and checked once by the command that parses them.

Every default is declared here and only here: the command line shows these values in its help.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent import __version__

PODTAP_AGENT_IMAGE = f"podtap-agent:{__version__}"
"""The image the Dockerfile builds: podtap installed, compiled extensions and all."""
STOCK_PYTHON_IMAGE = "python:3.12-slim"
"""A public image with nothing but Python: the agent's code comes in a ConfigMap."""


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
    agent_image: str | None = None
    """None: the stock Python image, or with ``agent_from_image`` the Dockerfile's."""
    agent_from_image: bool = False
    """The agent image has podtap installed: no ConfigMap with the agent's code."""
    privileged: bool = False
    ephemeral: bool = False
    """One agent inside each pod (an ephemeral container) instead of one per node."""
    agent_timeout: float = 60.0
    """Seconds an agent may take to answer before its pods are reported untappable."""
    agent_idle_timeout: int = 30
    """Seconds an agent outlives a podtap that vanished."""
    api_concurrency: int = 8
    """API calls (and port-forwards being opened) in flight at once."""

    @property
    def code_in_configmap(self) -> bool:
        """Ephemeral containers cannot add a volume: they need podtap in their image."""
        return not (self.agent_from_image or self.ephemeral)

    @property
    def image(self) -> str:
        if self.agent_image is not None:
            return self.agent_image
        return STOCK_PYTHON_IMAGE if self.code_in_configmap else PODTAP_AGENT_IMAGE


DEFAULTS = KubeOptions()
