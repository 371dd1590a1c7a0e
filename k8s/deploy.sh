#!/usr/bin/env bash
# Deploy wikipulse on minikube: build both images inside minikube, create the Secrets (random
# passwords, once), apply the dev overlay, wait until everything is ready, install the
# JupyterHub chart, and print the URLs.
#
#   k8s/deploy.sh            # everything
#   k8s/deploy.sh --no-hub   # without JupyterHub (no helm needed)
#
# Alerts are POSTed to a Slack-compatible webhook only if WIKIPULSE_ALERTS_WEBHOOK_URL is set:
# it is stored in the Secret alerts-webhook (key: url). Delete that Secret and restart
# deployment/alerts to turn the webhook off.
#
# Needs minikube, kubectl and (for the hub) helm; kustomize comes from .ci/tools.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

NAMESPACE=wikipulse
HUB_CHART_VERSION=4.4.0
HUB_RELEASE=jupyterhub
VERSION=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
with_hub=1
[ "${1:-}" = "--no-hub" ] && with_hub=0

need() { command -v "$1" >/dev/null 2>&1 || { echo "deploy: $1 is required" >&2; exit 1; }; }
need minikube
need kubectl
[ "$with_hub" = 0 ] || need helm
[ -x .tools/bin/kustomize ] || bash .ci/tools.sh

minikube status >/dev/null 2>&1 || minikube start --cpus=4 --memory=12g --disk-size=40g

echo "deploy: building wikipulse/pipeline:$VERSION and wikipulse/notebook:$VERSION in minikube"
minikube image build -t "wikipulse/pipeline:$VERSION" -f docker/pipeline.Dockerfile .
minikube image build -t "wikipulse/notebook:$VERSION" -f docker/notebook.Dockerfile .

kubectl get namespace "$NAMESPACE" >/dev/null 2>&1 || kubectl create namespace "$NAMESPACE"
for secret in postgres-admin postgres-writer postgres-reader hub-password; do
  if ! kubectl -n "$NAMESPACE" get secret "$secret" >/dev/null 2>&1; then
    kubectl -n "$NAMESPACE" create secret generic "$secret" \
      --from-literal=password="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
  fi
done
webhook_changed=0
if [ -n "${WIKIPULSE_ALERTS_WEBHOOK_URL:-}" ]; then
  applied=$(kubectl -n "$NAMESPACE" create secret generic alerts-webhook \
    --from-literal=url="$WIKIPULSE_ALERTS_WEBHOOK_URL" --dry-run=client -o yaml | kubectl apply -f -)
  case "$applied" in *unchanged) ;; *) webhook_changed=1 ;; esac
fi

# Jobs are immutable: a new image means a new Job, so finished ones are replaced.
kubectl -n "$NAMESPACE" delete job kafka-topics db-init --ignore-not-found
.tools/bin/kustomize build k8s/overlays/dev | kubectl apply -f -
# the alerts pod reads the webhook URL when it starts
[ "$webhook_changed" = 0 ] || kubectl -n "$NAMESPACE" rollout restart deployment/alerts

echo "deploy: waiting for Kafka, PostgreSQL and the init Jobs"
kubectl -n "$NAMESPACE" rollout status statefulset/kafka --timeout=10m
kubectl -n "$NAMESPACE" rollout status statefulset/postgres --timeout=10m
kubectl -n "$NAMESPACE" wait --for=condition=complete job/kafka-topics job/db-init --timeout=10m
for deployment in producer stream-driver alerts dashboard; do
  kubectl -n "$NAMESPACE" rollout status "deployment/$deployment" --timeout=15m
done

if [ "$with_hub" = 1 ]; then
  echo "deploy: JupyterHub chart $HUB_CHART_VERSION"
  helm repo add jupyterhub https://hub.jupyter.org/helm-chart/ >/dev/null
  helm repo update jupyterhub >/dev/null
  helm upgrade --install "$HUB_RELEASE" jupyterhub/jupyterhub \
    --namespace "$NAMESPACE" --version "$HUB_CHART_VERSION" \
    --values k8s/jupyterhub/values.yaml --wait --timeout 15m
fi

echo
echo "dashboard:  $(minikube service dashboard -n "$NAMESPACE" --url)"
if [ "$with_hub" = 1 ]; then
  echo "JupyterHub: kubectl -n $NAMESPACE port-forward service/proxy-public 8000:80, then http://127.0.0.1:8000/"
  echo "            shared password: kubectl -n $NAMESPACE get secret hub-password -o jsonpath='{.data.password}' | base64 -d"
fi
echo "Spark UI:   kubectl -n $NAMESPACE port-forward service/spark-driver 4040:4040, then http://127.0.0.1:4040/"
echo "status:     kubectl -n $NAMESPACE exec deploy/dashboard -- wikipulse stream status"
