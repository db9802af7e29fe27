"""What the API server refuses: RBAC denials configured for the test user, and Pod Security
admission on namespaces labelled ``pod-security.kubernetes.io/enforce``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.kubesim.errors import ApiError

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"

# The capabilities the baseline level lets a container add.
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)


@dataclass(frozen=True)
class Request:
    """What RBAC decides on: verb, API group, resource[/subresource], namespace, name."""

    verb: str
    group: str
    resource: str
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    @property
    def full_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


@dataclass
class Rbac:
    """Everything is allowed except the ``verb:resource[/sub]`` pairs in ``denied``."""

    user: str = "podtap-test"
    denied: set[tuple[str, str]] = field(default_factory=set)

    def deny(self, rule: str) -> None:
        self.denied.add(_parse_rule(rule))

    def allow(self, rule: str) -> None:
        self.denied.discard(_parse_rule(rule))

    def allows(self, request: Request) -> bool:
        return (request.verb, request.full_resource) not in self.denied and (
            "*",
            request.full_resource,
        ) not in self.denied

    def check(self, request: Request) -> None:
        if self.allows(request):
            return
        group_resource = (
            f"{request.resource}.{request.group}" if request.group else request.resource
        )
        where = (
            f'in the namespace "{request.namespace}"'
            if request.namespace
            else "at the cluster scope"
        )
        reason = (
            f'User "{self.user}" cannot {request.verb} resource "{request.full_resource}" '
            f'in API group "{request.group}" {where}'
        )
        raise ApiError.forbidden(
            group_resource, request.name, reason, request.group, request.resource
        )


def _parse_rule(rule: str) -> tuple[str, str]:
    verb, _, resource = rule.partition(":")
    if not verb or not resource:
        raise ValueError(f"a deny rule looks like VERB:RESOURCE[/SUBRESOURCE], not {rule!r}")
    return verb, resource


def _quoted(values: Iterable[str]) -> str:
    return ", ".join(f'"{value}"' for value in values)


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod.get("spec") or {}
    return [
        *(spec.get("initContainers") or []),
        *(spec.get("containers") or []),
        *(spec.get("ephemeralContainers") or []),
    ]


def _who(names: list[str]) -> str:
    noun = "container" if len(names) == 1 else "containers"
    return f"{noun} {_quoted(names)}"


def _baseline_violations(pod: dict[str, Any]) -> list[str]:
    spec = pod.get("spec") or {}
    problems = []
    hosts = [f"{flag}=true" for flag in ("hostNetwork", "hostPID", "hostIPC") if spec.get(flag)]
    if hosts:
        problems.append(f"host namespaces ({', '.join(hosts)})")
    privileged = [
        c["name"] for c in _containers(pod) if (c.get("securityContext") or {}).get("privileged")
    ]
    if privileged:
        problems.append(
            f"privileged ({_who(privileged)} must not set securityContext.privileged=true)"
        )
    offenders: list[str] = []
    extra: set[str] = set()
    for container in _containers(pod):
        added = ((container.get("securityContext") or {}).get("capabilities") or {}).get("add")
        bad = {cap for cap in added or [] if cap not in BASELINE_CAPABILITIES}
        if bad:
            offenders.append(container["name"])
            extra |= bad
    if offenders:
        problems.append(
            f"non-default capabilities ({_who(offenders)} must not include "
            f"{_quoted(sorted(extra))} in securityContext.capabilities.add)"
        )
    return problems


def _restricted_violations(pod: dict[str, Any]) -> list[str]:
    problems = []
    pod_context = (pod.get("spec") or {}).get("securityContext") or {}
    containers = _containers(pod)

    def context(container: dict[str, Any]) -> dict[str, Any]:
        return container.get("securityContext") or {}

    escalating = [
        c["name"] for c in containers if context(c).get("allowPrivilegeEscalation") is not False
    ]
    if escalating:
        problems.append(
            f"allowPrivilegeEscalation != false ({_who(escalating)} must set "
            f"securityContext.allowPrivilegeEscalation=false)"
        )
    not_dropping = [
        c["name"]
        for c in containers
        if "ALL" not in ((context(c).get("capabilities") or {}).get("drop") or [])
    ]
    if not_dropping:
        problems.append(
            f"unrestricted capabilities ({_who(not_dropping)} must set "
            f'securityContext.capabilities.drop=["ALL"])'
        )
    if not pod_context.get("runAsNonRoot"):
        rooted = [c["name"] for c in containers if not context(c).get("runAsNonRoot")]
        if rooted:
            problems.append(
                f"runAsNonRoot != true (pod or {_who(rooted)} must set "
                f"securityContext.runAsNonRoot=true)"
            )
    if not (pod_context.get("seccompProfile") or {}).get("type"):
        unconfined = [
            c["name"]
            for c in containers
            if not (context(c).get("seccompProfile") or {}).get("type")
        ]
        if unconfined:
            problems.append(
                f"seccompProfile (pod or {_who(unconfined)} must set "
                f'securityContext.seccompProfile.type to "RuntimeDefault" or '
                f'"Localhost")'
            )
    return problems


def pod_security_violation(namespace_labels: dict[str, str], pod: dict[str, Any]) -> str | None:
    """The ``violates PodSecurity ...`` text for a pod the namespace's level refuses."""
    level = namespace_labels.get(ENFORCE_LABEL, "privileged")
    version = namespace_labels.get(f"{ENFORCE_LABEL}-version", "latest")
    if level == "privileged":
        return None
    problems = _baseline_violations(pod)
    if level == "restricted":
        problems += _restricted_violations(pod)
    if not problems:
        return None
    return f'violates PodSecurity "{level}:{version}": {", ".join(problems)}'


def check_pod_security(namespace_labels: dict[str, str], pod: dict[str, Any]) -> None:
    violation = pod_security_violation(namespace_labels, pod)
    if violation:
        raise ApiError.forbidden("pods", pod["metadata"].get("name", ""), violation, "", "pods")
