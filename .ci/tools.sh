#!/usr/bin/env bash
# Install the deployment tools the tests and `wikipulse hub` use into git-ignored folders:
#   .tools/bin/kustomize            pinned, built with `go install` from the Go module proxy
#   .tools/node/node_modules/.bin/  configurable-http-proxy, pinned by .ci/node/package-lock.json
#   .venv-tools/bin/checkov         its own virtualenv: checkov pins packages the Jupyter stack
#                                   needs newer, so it cannot share .venv
# Idempotent and fast when everything is in place: each step compares a stamp first.
set -euo pipefail
cd "$(dirname "$0")/.."

KUSTOMIZE_VERSION=v5.8.1
CHECKOV_VERSION=3.3.30
TOOLS=.tools
mkdir -p "$TOOLS/bin"

# --- kustomize -------------------------------------------------------------------------------
if [ "$("$TOOLS/bin/kustomize" version 2>/dev/null || true)" != "$KUSTOMIZE_VERSION" ]; then
  go_bin=$(command -v go || true)
  [ -n "$go_bin" ] || [ ! -x /usr/local/go/bin/go ] || go_bin=/usr/local/go/bin/go
  if [ -z "$go_bin" ]; then
    echo "tools: Go 1.24+ is needed to build kustomize (https://go.dev/dl)" >&2
    exit 1
  fi
  echo "tools: building kustomize $KUSTOMIZE_VERSION"
  GOBIN="$PWD/$TOOLS/bin" GOFLAGS=-mod=mod "$go_bin" install \
    "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
fi

# --- configurable-http-proxy -----------------------------------------------------------------
node_dir="$TOOLS/node"
lock_sum=$(sha256sum .ci/node/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$node_dir/.lock-sha256" 2>/dev/null || true)" != "$lock_sum" ] \
  || [ ! -x "$node_dir/node_modules/.bin/configurable-http-proxy" ]; then
  command -v npm >/dev/null 2>&1 || { echo "tools: npm is needed (apt-get install npm)" >&2; exit 1; }
  echo "tools: installing configurable-http-proxy"
  mkdir -p "$node_dir"
  cp .ci/node/package.json .ci/node/package-lock.json "$node_dir/"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" > "$node_dir/.lock-sha256"
fi

# --- checkov ---------------------------------------------------------------------------------
# (checkov --version takes seconds to start, so a stamp records what was installed)
if [ "$(cat .venv-tools/.checkov-version 2>/dev/null || true)" != "$CHECKOV_VERSION" ] \
  || [ ! -x .venv-tools/bin/checkov ]; then
  echo "tools: installing checkov $CHECKOV_VERSION into .venv-tools"
  test -x .venv-tools/bin/python || python3 -m venv .venv-tools
  .venv-tools/bin/pip install -q --upgrade pip
  .venv-tools/bin/pip install -q "checkov==$CHECKOV_VERSION"
  echo "$CHECKOV_VERSION" > .venv-tools/.checkov-version
fi

echo "tools: kustomize $("$TOOLS/bin/kustomize" version)," \
  "configurable-http-proxy $("$node_dir/node_modules/.bin/configurable-http-proxy" --version)," \
  "checkov $(cat .venv-tools/.checkov-version)"
