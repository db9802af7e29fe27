"""Label selectors and owner lookups used to turn targets into pod queries."""

from __future__ import annotations

from tui.sources.kube.preflight import needed_permissions
from tui.sources.kube.resolve import PodQuery, newest_owned, selector_string


def test_match_labels_and_expressions_become_a_query_string() -> None:
    selector = {
        "matchLabels": {"app": "web", "tier": "front"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "canary"]},
            {"key": "legacy", "operator": "NotIn", "values": ["yes"]},
            {"key": "team", "operator": "Exists"},
            {"key": "debug", "operator": "DoesNotExist"},
        ],
    }
    assert selector_string(selector) == (
        "app=web,tier=front,env in (canary,prod),legacy notin (yes),team,!debug"
    )
    assert selector_string(None) == ""


def test_the_newest_owned_job_is_chosen() -> None:
    def job(name: str, created: str, owner: str) -> dict[str, object]:
        return {
            "metadata": {
                "name": name,
                "creationTimestamp": created,
                "ownerReferences": [{"uid": owner}],
            }
        }

    jobs = [
        job("a", "2026-01-01T10:00:00Z", "cj"),
        job("b", "2026-01-01T11:00:00Z", "cj"),
        job("c", "2026-01-01T12:00:00Z", "other"),
    ]
    chosen = newest_owned(jobs, "cj")
    assert chosen is not None
    assert chosen["metadata"]["name"] == "b"
    assert newest_owned(jobs, "none") is None


def test_a_pod_query_matches_by_name() -> None:
    query = PodQuery("ns", None, "web-1")
    assert query.field_selector == "metadata.name=web-1"
    assert query.matches({"metadata": {"name": "web-1"}})
    assert not query.matches({"metadata": {"name": "web-2"}})


def test_permissions_needed_for_jobs_and_for_ephemeral_containers() -> None:
    jobs = {str(p) for p in needed_permissions("shop", {"podtap"}, ephemeral=False)}
    assert "create jobs (API group batch) in namespace 'podtap'" in jobs
    assert "delete jobs (API group batch) in namespace 'podtap'" in jobs
    assert "create pods/portforward in namespace 'podtap'" in jobs
    assert "watch pods in namespace 'shop'" in jobs
    ephemeral = {str(p) for p in needed_permissions("shop", {"podtap"}, ephemeral=True)}
    assert "patch pods/ephemeralcontainers in namespace 'shop'" in ephemeral
    assert "create pods/portforward in namespace 'shop'" in ephemeral
    assert not any("jobs" in p for p in ephemeral)
