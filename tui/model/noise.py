"""Noise: the probes and scrapes that drown real traffic (kubelet health checks, metrics)."""

from __future__ import annotations

from tui.model.flows import Exchange

NOISE_PATHS = frozenset(
    {"/healthz", "/readyz", "/livez", "/health", "/ready", "/metrics", "/ping", "/live"}
)
NOISE_USER_AGENT_PREFIXES = ("kube-probe/",)


def is_noise(exchange: Exchange) -> bool:
    request = exchange.request
    path = request.path.rstrip("/") or "/"
    if path in NOISE_PATHS:
        return True
    user_agent = request.header("user-agent")
    return user_agent is not None and user_agent.lower().startswith(NOISE_USER_AGENT_PREFIXES)
