#!/usr/bin/env bash
# One-shot HomeLabPi storage setup against a running MinIO (safe to run again).
#
#   sudo ./faasd/setup.sh [MINIO_URL]        # default http://127.0.0.1:9000
#
# Waits for MinIO, then runs `homelabpi cluster setup` (homelabpi/cluster/setup.py, the `minio`
# Python package; no `mc`): the bucket and its prefixes, a MinIO user for the functions (not the
# root user), the bucket-event rules of homelabpi.events.ROUTES, and the OpenFaaS secrets the
# functions read, written to $SECRETS_DIR/openfaas-fn/ where faasd-provider looks for them.
set -euo pipefail

MINIO_URL="${1:-${MINIO_URL:-http://127.0.0.1:9000}}"
SECRETS_DIR="${SECRETS_DIR:-/var/lib/faasd/secrets}"
HOMELABPI="${HOMELABPI:-/opt/homelabpi/bin/homelabpi}"

die() { echo "setup.sh: $*" >&2; exit 1; }
[ -x "$HOMELABPI" ] || die "$HOMELABPI not found (install.sh installs it)"

echo "waiting for MinIO at $MINIO_URL ..."
for _ in $(seq 1 90); do
  if curl -sf "$MINIO_URL/minio/health/live" >/dev/null; then
    break
  fi
  sleep 2
done
curl -sf "$MINIO_URL/minio/health/live" >/dev/null || die "MinIO at $MINIO_URL did not come up"

"$HOMELABPI" cluster setup --endpoint "$MINIO_URL" --secrets-dir "$SECRETS_DIR"
