#!/usr/bin/env bash
# Build the function images for the Pis (linux/arm64) on a laptop with Docker buildx, and push.
#
#   REGISTRY=ghcr.io/<you> TAG=0.1.0 ./faasd/publish.sh
#
# faasd has no Docker and pulls only over TLS: push to a TLS registry every Pi reaches. For a
# private registry copy your ~/.docker/config.json to /var/lib/faasd/.docker/config.json on each
# Pi (faasd reads registry credentials there), then `faas-cli deploy -f stack.yml` on the Pi.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${REGISTRY:?set REGISTRY, e.g. ghcr.io/<you>}"
export REGISTRY TAG="${TAG:-0.1.0}"
command -v faas-cli >/dev/null || { echo "install faas-cli: https://github.com/openfaas/faas-cli" >&2; exit 1; }
docker buildx version >/dev/null 2>&1 || { echo "needs Docker with buildx" >&2; exit 1; }
faas-cli template pull stack -f stack.yml
# TEST_ENABLED=false is also set per function in stack.yml (the template's tox stage).
faas-cli publish -f stack.yml --platforms linux/arm64 --build-arg TEST_ENABLED=false
echo "pushed $REGISTRY/homelabpi-{transcribe,index,answer,reconcile}:$TAG for linux/arm64"
