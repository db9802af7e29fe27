"""Connecting to the cluster as kubectl would, and turning API errors into sentences.

Every call returns the API's JSON as plain dicts (no client models): the rest of the package
reads the same shapes the API documents, and its rules are tested on literal dicts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError

from agent.errors import UserError

Json = dict[str, Any]

REQUEST_TIMEOUT = (10, 60)
"""Connect and read timeouts of every API call: a hung API server must not hang podtap."""

Unreachable = (HTTPError, OSError)
"""What the client raises when the API server cannot be reached (refused, DNS, TLS...)."""

# The config loader has no type hints.
config: Any = kube_config


@dataclass(frozen=True)
class Cluster:
    api: client.ApiClient
    namespace: str
    """The namespace of the kubeconfig context, used when -n is not given."""
    context: str

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self.api)

    @property
    def authorization(self) -> client.AuthorizationV1Api:
        return client.AuthorizationV1Api(self.api)

    def close(self) -> None:
        cast(Any, self.api).close()


def connect(kubeconfig: str | None, context: str | None) -> Cluster:
    """Read the kubeconfig the way kubectl does: --kubeconfig, else $KUBECONFIG (a list of
    files), else ~/.kube/config; --context, else the current context."""
    path = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    if kubeconfig and not os.path.exists(os.path.expanduser(kubeconfig)):
        raise UserError(f"The kubeconfig file {kubeconfig} does not exist.")
    try:
        contexts, current = config.list_kube_config_contexts(path)
        chosen = _find_context(contexts, context) if context else current
        configuration = client.Configuration()
        config.load_kube_config(
            config_file=path,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except ConfigException as error:
        raise UserError(
            f"Cannot read a Kubernetes configuration from {path} ({error}); "
            "pass --kubeconfig or set KUBECONFIG."
        ) from None
    namespace = str(((chosen or {}).get("context") or {}).get("namespace") or "default")
    name = str((chosen or {}).get("name") or "")
    return Cluster(client.ApiClient(configuration), namespace, name)


def _find_context(contexts: list[Json], wanted: str) -> Json:
    for candidate in contexts:
        if candidate.get("name") == wanted:
            return candidate
    names = ", ".join(str(c.get("name")) for c in contexts)
    raise UserError(f"The kubeconfig has no context {wanted!r}; it has: {names}.")


def call(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Json:
    """Call a client method and return the response body as a dict (raises ApiException)."""
    kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
    response = method(*args, _preload_content=False, **kwargs)
    data = response.data
    result: Json = json.loads(data) if data else {}
    return result


def delete_unless_gone(method: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Call a client's delete method; an object already gone (404) is deleted too."""
    kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
    try:
        method(*args, _preload_content=False, **kwargs)
    except ApiException as error:
        if error.status != 404:
            raise


def status_message(error: ApiException) -> str:
    """The human part of an API error: the Status body's message, else the HTTP reason."""
    try:
        body = json.loads(error.body or "")
        message = body.get("message") if isinstance(body, dict) else None
    except ValueError:
        message = None
    return str(message or error.reason or f"HTTP {error.status}")


def unreachable_sentence(cluster: Cluster, error: BaseException) -> str:
    host = cluster.api.configuration.host
    reason = getattr(error, "reason", None) or error
    return (
        f"Cannot reach the Kubernetes API at {host} (context {cluster.context!r}): "
        f"{reason}; check the cluster is up and the kubeconfig points at it."
    )


__all__ = [
    "ApiException",
    "Cluster",
    "Json",
    "Unreachable",
    "call",
    "connect",
    "delete_unless_gone",
    "status_message",
    "unreachable_sentence",
]
