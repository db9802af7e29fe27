"""The control plane's controllers, level-triggered: each pass compares desired and actual
state and writes only the differences."""

from __future__ import annotations

from tests.kubesim.controllers.common import owner_reference, template_hash
from tests.kubesim.controllers.garbage import collect_garbage
from tests.kubesim.controllers.jobs import reconcile_cronjob, reconcile_job
from tests.kubesim.controllers.scheduler import Scheduler
from tests.kubesim.controllers.workloads import (
    reconcile_daemonset,
    reconcile_deployment,
    reconcile_replicaset,
    reconcile_statefulset,
)
from tests.kubesim.resources import CRONJOB, DAEMONSET, DEPLOYMENT, JOB, REPLICASET, STATEFULSET
from tests.kubesim.store import Store

__all__ = ["Controllers", "owner_reference", "template_hash"]


class Controllers:
    def __init__(self, store: Store, nodes: list[str]) -> None:
        self.store = store
        self.nodes = nodes
        self.scheduler = Scheduler(store, nodes)

    def reconcile(self) -> None:
        store = self.store
        collect_garbage(store)
        for deployment in store.list(DEPLOYMENT):
            reconcile_deployment(store, deployment)
        for rs in store.list(REPLICASET):
            reconcile_replicaset(store, rs)
        for sts in store.list(STATEFULSET):
            reconcile_statefulset(store, sts)
        for ds in store.list(DAEMONSET):
            reconcile_daemonset(store, ds, self.nodes)
        for job in store.list(JOB):
            reconcile_job(store, job)
        for cronjob in store.list(CRONJOB):
            reconcile_cronjob(store, cronjob)
        self.scheduler.schedule()
