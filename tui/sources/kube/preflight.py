"""Before creating anything: may the user do what podtap needs, and will admission let the agent
pod in? Each problem becomes one sentence that says what to do."""

from __future__ import annotations

from dataclasses import dataclass

from agent.errors import UserError
from tui.sources.kube.cluster import ApiException, Cluster, Json, call, status_message


@dataclass(frozen=True, slots=True)
class Permission:
    verb: str
    resource: str
    namespace: str
    group: str = ""
    subresource: str = ""

    def __str__(self) -> str:
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        group = f" (API group {self.group})" if self.group else ""
        return f"{self.verb} {resource}{group} in namespace {self.namespace!r}"


def needed_permissions(
    target_namespace: str, agent_namespaces: set[str], *, ephemeral: bool, code: bool = False
) -> list[Permission]:
    """``code``: the agent's code goes in a ConfigMap (a stock Python image)."""
    needed = [Permission(verb, "pods", target_namespace) for verb in ("get", "list", "watch")]
    if ephemeral:
        needed += [
            Permission("patch", "pods", target_namespace, subresource="ephemeralcontainers"),
            Permission("create", "pods", target_namespace, subresource="portforward"),
        ]
        return needed
    for namespace in sorted(agent_namespaces):
        needed += [
            Permission("create", "jobs", namespace, group="batch"),
            Permission("delete", "jobs", namespace, group="batch"),
            Permission("create", "secrets", namespace),
            *(
                [Permission(verb, "configmaps", namespace) for verb in ("create", "patch")]
                if code
                else []
            ),
            Permission("list", "pods", namespace),
            Permission("create", "pods", namespace, subresource="portforward"),
        ]
    return list(dict.fromkeys(needed))


def access_review(permission: Permission) -> Json:
    attributes = {
        "namespace": permission.namespace,
        "verb": permission.verb,
        "group": permission.group,
        "resource": permission.resource,
    }
    if permission.subresource:
        attributes["subresource"] = permission.subresource
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    }


def is_allowed(cluster: Cluster, permission: Permission) -> bool:
    """Blocking. A server that cannot answer reviews is not taken as a refusal."""
    try:
        review = call(
            cluster.authorization.create_self_subject_access_review, access_review(permission)
        )
    except ApiException as error:
        if error.status in (404, 405):
            return True
        if error.status == 403:
            return False
        raise
    return bool((review.get("status") or {}).get("allowed"))


def check_permissions(cluster: Cluster, needed: list[Permission]) -> None:
    """Blocking. Raises UserError naming the first missing permission."""
    for permission in needed:
        if not is_allowed(cluster, permission):
            raise UserError(
                f"Your Kubernetes user may not {permission}, which podtap needs; "
                "ask for the Role in docs/rbac.md."
            )


def check_pod_security(cluster: Cluster, namespace: str, pod: Json) -> None:
    """Blocking. Server-side dry run of the agent pod: admission (Pod Security) judges it and
    nothing is created. Skipped silently when the user may not create pods directly."""
    if not is_allowed(cluster, Permission("create", "pods", namespace)):
        return
    try:
        call(cluster.core.create_namespaced_pod, namespace, pod, dry_run="All")
    except ApiException as error:
        message = status_message(error)
        if error.status == 403 and "PodSecurity" in message:
            raise UserError(pod_security_sentence(namespace, message)) from None
        if error.status in (401, 403, 404, 405, 409):
            return
        raise UserError(
            f"Kubernetes rejected the agent pod in namespace {namespace!r}: {message}."
        ) from None


def pod_security_sentence(namespace: str, message: str) -> str:
    return (
        f"The Pod Security level of namespace {namespace!r} rejects the agent pod ({message}); "
        "use --agent-namespace with a namespace labelled "
        "pod-security.kubernetes.io/enforce=privileged, or --ephemeral."
    )
