"""kubesim: a Kubernetes cluster simulator for podtap's tests (root only).

The unpatched official ``kubernetes`` client talks to it like to a real cluster; every pod is a
real network namespace on a 198.19.N.0/23 bridge, running real processes in cgroups named after
their container ids. Workload containers without a command run ``tests.kubesim.podserver``
(HTTP/1.1, answers ``x-pod: <pod name>``); a command starting with ``podtap`` runs
``<sys.executable> -m tui ...`` from this checkout, in the pod's own network namespace with host
PID semantics (the agent sees the host /proc).

By hand::

    python -m tests.kubesim --kubeconfig /tmp/kc --deployment default/web=3:8080 --nodes 2
    # prints "pod NAMESPACE/NAME IP NODE" per pod, then READY; Ctrl+C cleans everything up
    kubectl --kubeconfig /tmp/kc get pods -A;  curl -i http://<pod ip>:8080/

Other options: --statefulset NS/NAME=N:PORT, --daemonset NS/NAME:PORT, --job NS/NAME:PORT,
--cronjob NS/NAME=JOBS:PORT, --pod NS/NAME:PORT, --service NS/NAME, --sidecar istio-proxy,
--deny VERB:RESOURCE (create:jobs, create:pods/portforward), --fail-image PATTERN,
--pod-security NS=baseline|restricted, --namespace NS. Contexts: "kubesim" (namespace default)
and "kubesim-other" (namespace other).

In tests::

    from tests.kubesim import KubeSim, SimConfig, Workload
    with KubeSim(SimConfig(deployments=[Workload("default", "web", 3, 8080)])) as sim:
        sim.kubeconfig; sim.pods("default", "app=web"); sim.scale("default", "web", 4)
        sim.deny("create:jobs") / sim.allow(...); sim.fail_image("bad") / sim.heal_image(...)
        sim.label_namespace(ns, {"pod-security.kubernetes.io/enforce": "baseline"})
        sim.agent_processes(); sim.processes()   # pid + argv of every container process
        sim.cut_port_forwards(ns, pod)           # drop open port-forwards mid-stream
        sim.compact()                            # watches from older versions get 410

or the ``kubesim`` fixture of tests/kube/conftest.py (a deployment default/web=3:8080 on 2
nodes; ``@pytest.mark.kubesim("--deployment", "default/api=2:80", ...)`` for other
clusters, with the command-line syntax above).

Requests without credentials count as the test user, because kubectl does not send a bearer
token over plain http; a wrong token gets 401. kubectl port-forward/exec are not served (only
the websocket port-forward the Python client speaks).

Containers of pods without hostPID run as pid 1 of their own PID namespace (with their own
/proc), behind an ``unshare`` shim; hostPID pods see every process of the host.

Simplifications: one kubelet for all nodes (they share this host), no shareProcessNamespace,
CronJobs do not run on a clock (their Jobs are made at start), graceful
shutdown waits at most 5 s, resource limits are not enforced, no Services routing (a Service is
only its selector and ports).
"""

from tests.kubesim.config import SimConfig, Workload
from tests.kubesim.sim import ContainerProcess, KubeSim, PodInfo

__all__ = ["ContainerProcess", "KubeSim", "PodInfo", "SimConfig", "Workload"]
