"""Following the target's pods while a session runs: added, changed, deleted.

The client's watch is blocking, so it runs in a daemon thread (one that never keeps podtap from
exiting) and hands each change to the event loop. A broken or expired watch is replaced by a
fresh list, delivered as one ``SYNC`` so that the session can reconcile.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any, Literal

from kubernetes import watch as kube_watch
from urllib3.exceptions import HTTPError

from tui.sources.kube.cluster import ApiException, Cluster
from tui.sources.kube.pods import Pod
from tui.sources.kube.resolve import PodQuery, list_pods

watch: Any = kube_watch  # untyped

ChangeKind = Literal["ADDED", "MODIFIED", "DELETED", "SYNC"]
RETRY_DELAY = 1.0


@dataclass(frozen=True, slots=True)
class PodChange:
    kind: ChangeKind
    pods: list[Pod]
    """One pod, or for ``SYNC`` every pod the query matches now."""


class PodWatch:
    def __init__(self, cluster: Cluster, query: PodQuery, resource_version: str) -> None:
        self._cluster = cluster
        self._query = query
        self._resource_version = resource_version
        self._stopped = threading.Event()
        self._watch: Any = None
        self.changes: asyncio.Queue[PodChange] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="podtap pod watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._watch is not None:
            self._watch.stop()

    def _deliver(self, change: PodChange) -> None:
        if not self._stopped.is_set():
            self._loop.call_soon_threadsafe(self.changes.put_nowait, change)

    def _run(self) -> None:
        query = self._query
        while not self._stopped.is_set():
            if not self._resource_version:
                try:
                    pods, self._resource_version = list_pods(self._cluster, query)
                except Exception:
                    self._stopped.wait(RETRY_DELAY)
                    continue
                self._deliver(PodChange("SYNC", pods))
            self._watch = watch.Watch()
            try:
                for event in self._watch.stream(
                    self._cluster.core.list_namespaced_pod,
                    query.namespace,
                    label_selector=query.label_selector or None,
                    field_selector=query.field_selector,
                    resource_version=self._resource_version,
                    timeout_seconds=300,
                    allow_watch_bookmarks=True,
                    deserialize=False,
                ):
                    if self._stopped.is_set():
                        return
                    kind = event.get("type")
                    obj = event.get("object") or {}
                    version = (obj.get("metadata") or {}).get("resourceVersion")
                    if version:
                        self._resource_version = str(version)
                    if kind in ("ADDED", "MODIFIED", "DELETED") and query.matches(obj):
                        obj["metadata"].setdefault("namespace", query.namespace)
                        self._deliver(PodChange(kind, [obj]))
            except (ApiException, HTTPError, OSError, ValueError, RuntimeError):
                # Expired (410) or cut: start over from a fresh list.
                self._resource_version = ""
                self._stopped.wait(RETRY_DELAY)
            finally:
                self._watch = None
