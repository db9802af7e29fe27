#!/usr/bin/env bash
# podtap against a real cluster: kind + the agent image + a 3-replica sample app.
#
# Needs docker, kind, kubectl and podtap (pip install -e .) on PATH. Cannot run on machines
# without a container runtime; it is kept correct by reading and by the simulator tests.
#
#   scripts/kind-e2e.sh            # creates cluster "podtap-e2e", deletes it at the end
#   KEEP_CLUSTER=1 scripts/kind-e2e.sh
set -euo pipefail

cluster=${CLUSTER:-podtap-e2e}
version=$(python3 -c 'import agent; print(agent.__version__)')
image="podtap-agent:${version}"
kubeconfig=$(mktemp)
dump_out=$(mktemp)
here=$(cd "$(dirname "$0")/.." && pwd)

cleanup() {
    [[ -n "${dump_pid:-}" ]] && kill "$dump_pid" 2>/dev/null || true
    if [[ -z "${KEEP_CLUSTER:-}" ]]; then
        kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
    fi
    rm -f "$kubeconfig" "$dump_out"
}
trap cleanup EXIT

echo "== cluster $cluster"
kind get clusters | grep -qx "$cluster" || kind create cluster --name "$cluster" --wait 120s
kind get kubeconfig --name "$cluster" > "$kubeconfig"
export KUBECONFIG=$kubeconfig

echo "== image $image"
docker build -t "$image" "$here"
kind load docker-image "$image" --name "$cluster"

echo "== sample app"
kubectl create deployment web --image=nginx:1.27-alpine --replicas=3 --port=80 \
    --dry-run=client -o yaml | kubectl apply -f -
kubectl expose deployment web --port=80 --dry-run=client -o yaml | kubectl apply -f -
kubectl rollout status deployment/web --timeout=180s
kubectl run curl --image=curlimages/curl:8.10.1 --restart=Never --dry-run=client -o yaml \
    --command -- sleep 3600 | kubectl apply -f -
kubectl wait --for=condition=Ready pod/curl --timeout=120s

echo "== podtap dump deployment/web"
podtap dump deployment/web --agent-image "$image" > "$dump_out" 2> >(tee /dev/stderr) &
dump_pid=$!
for _ in $(seq 120); do
    [[ $(kubectl get pods -l app.kubernetes.io/name=podtap-agent \
          --field-selector=status.phase=Running -o name | wc -l) -ge 3 ]] && break
    sleep 1
done
sleep 3   # the port-forwards connect once the agents run

pods=$(kubectl get pods -l app=web -o jsonpath='{range .items[*]}{.status.podIP}{"\n"}{end}')
for ip in $pods; do
    kubectl exec curl -- curl -s -o /dev/null -H "x-e2e: $ip" "http://$ip/e2e-$ip"
done
sleep 2
kill -INT "$dump_pid"
wait "$dump_pid" || true
unset dump_pid

echo "== checks"
status=0
for ip in $pods; do
    if grep -q "GET /e2e-$ip " "$dump_out"; then
        echo "ok: request to $ip seen"
    else
        echo "MISSING: request to $ip"; status=1
    fi
done
for _ in $(seq 30); do
    left=$(kubectl get jobs,pods -A -l app.kubernetes.io/name=podtap-agent -o name | wc -l)
    [[ $left -eq 0 ]] && break
    sleep 1
done
if [[ $left -eq 0 ]]; then echo "ok: no agent left"; else echo "LEFT: $left agent objects"; status=1; fi
exit $status
