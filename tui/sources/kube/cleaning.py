"""What ``podtap clean`` does: find podtap's agents by label and delete them, with the token
Secrets and code ConfigMaps of their sessions."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from agent.errors import UserError
from tui.sources.kube.agents import delete_job, delete_pod, find_leftovers
from tui.sources.kube.cluster import (
    ApiException,
    Unreachable,
    connect,
    status_message,
    unreachable_sentence,
)
from tui.sources.kube.node_jobs import (
    DELETE_CONCURRENCY,
    delete_session_object,
    find_session_data,
)


def clean_leftovers(
    *,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    all_namespaces: bool,
    dry_run: bool,
) -> int:
    cluster = connect(kubeconfig, context)
    scope = None if all_namespaces else (namespace or cluster.namespace)
    where = "all namespaces" if scope is None else f"namespace {scope!r}"
    try:
        jobs, pods = find_leftovers(cluster, scope)
        # Pods of a listed Job go with it; list only the ones that stand alone.
        owned_by_jobs = {(j["metadata"].get("namespace"), j["metadata"]["name"]) for j in jobs}
        loose = [
            pod
            for pod in pods
            if (pod["metadata"].get("namespace"), _job_of(pod)) not in owned_by_jobs
        ]
        for obj, kind in [(j, "job") for j in jobs] + [(p, "pod") for p in pods]:
            meta = obj["metadata"]
            verb = "would delete" if dry_run else "deleting"
            print(f"{verb} {kind} {meta.get('namespace', scope)}/{meta['name']}")
        # Secrets and ConfigMaps go with their Jobs; one left without a Job is also deleted.
        data = find_session_data(cluster, scope)
        for obj, kind in data:
            meta = obj["metadata"]
            if not any(ref.get("kind") == "Job" for ref in meta.get("ownerReferences") or []):
                verb = "would delete" if dry_run else "deleting"
                print(f"{verb} {kind.lower()} {meta.get('namespace', scope)}/{meta['name']}")
        if not dry_run:
            _all_at_once(
                [partial(delete_job, cluster, job) for job in jobs]
                + [partial(delete_pod, cluster, pod) for pod in pods]
                + [partial(delete_session_object, cluster, item, kind) for item, kind in data]
            )
    except ApiException as error:
        raise UserError(f"Could not clean {where}: {status_message(error)}.") from None
    except Unreachable as error:
        raise UserError(unreachable_sentence(cluster, error)) from None
    finally:
        cluster.close()
    if not jobs and not pods:
        print(f"No podtap agents in {where}.", file=sys.stderr)
    else:
        done = "Would delete" if dry_run else "Deleted"
        print(
            f"{done} {len(jobs)} agent Job(s) and {len(pods)} agent pod(s) "
            f"({len(loose)} without a Job) in {where}.",
            file=sys.stderr,
        )
    return 0


def _all_at_once(deletions: Sequence[Callable[[], None]]) -> None:
    """Run the deletions concurrently (one round trip each: a few hundred agents one after
    the other took seconds); the first failure is raised once all have run."""
    with ThreadPoolExecutor(DELETE_CONCURRENCY, thread_name_prefix="podtap clean") as pool:
        running = [pool.submit(deletion) for deletion in deletions]
    for deletion in running:
        deletion.result()


def _job_of(pod: dict[str, object]) -> str | None:
    meta = pod.get("metadata")
    if not isinstance(meta, dict):
        return None
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "Job":
            return str(ref.get("name"))
    return None
