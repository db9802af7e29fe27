"""The scheduler: binds each pod without a node to the next node, round robin."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import cycle

from tests.kubesim import objects
from tests.kubesim.resources import POD
from tests.kubesim.store import Store, now_rfc3339


class Scheduler:
    def __init__(self, store: Store, nodes: list[str]) -> None:
        self.store = store
        self._next_node: Iterator[str] = cycle(nodes)

    def schedule(self) -> None:
        for pod in self.store.list(POD):
            if pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
                continue
            pod["spec"]["nodeName"] = next(self._next_node)
            pod["status"]["conditions"] = [
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": now_rfc3339(),
                }
            ]
            self.store.update(POD, pod)
            objects.record_event(
                self.store,
                pod,
                "Normal",
                "Scheduled",
                f"Successfully assigned {pod['metadata']['namespace']}/"
                f"{pod['metadata']['name']} to {pod['spec']['nodeName']}",
                "default-scheduler",
            )
