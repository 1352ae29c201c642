#!/usr/bin/env bash
# Install faasd + MinIO + HomeLabPi's storage setup on 64-bit Raspberry Pi OS (bookworm, arm64).
#
#   sudo ./faasd/install.sh                      # one Pi: MinIO as a faasd core service
#   sudo ./faasd/install.sh --no-minio           # extra Pis / external MinIO: faasd only
#   sudo ./faasd/install.sh --index-gateway pi1.lan:8080   # point index events at pi1
#
# Run from a checkout of the repository. Needs internet (GitHub, quay.io, PyPI).
# faasd CE is free for personal, non-commercial use; read its EULA.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FAASD_DIR=/var/lib/faasd
SECRETS_DIR="$FAASD_DIR/secrets"
WITH_MINIO=1
INDEX_GATEWAY="gateway:8080"
MINIO_VOLUMES="/minio/data"

while [ $# -gt 0 ]; do
  case "$1" in
    --no-minio) WITH_MINIO=0 ;;
    --index-gateway) INDEX_GATEWAY="$2"; shift ;;
    --volumes) MINIO_VOLUMES="$2"; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

die() { echo "install.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (sudo)"
[ "$(uname -m)" = "aarch64" ] || die "needs a 64-bit OS (uname -m is $(uname -m)); flash the 64-bit Raspberry Pi OS"

echo "== packages"
apt-get update -qq
apt-get install -y -qq curl git python3 python3-venv python3-yaml openssl ca-certificates >/dev/null

# Raspberry Pi OS boots without the memory cgroup that containerd needs for memory limits.
cmdline=/boot/firmware/cmdline.txt
[ -f "$cmdline" ] || cmdline=/boot/cmdline.txt
if [ -f "$cmdline" ] && ! grep -q "cgroup_enable=memory" "$cmdline"; then
  sed -i '1 s/$/ cgroup_enable=memory cgroup_memory=1/' "$cmdline"
  echo "enabled the memory cgroup in $cmdline: reboot once this script finishes"
fi

echo "== faasd"
if ! command -v faasd >/dev/null 2>&1; then
  curl -sfL https://raw.githubusercontent.com/openfaas/faasd/master/hack/install.sh | bash -s -
fi
command -v faas-cli >/dev/null 2>&1 || curl -sSL https://cli.openfaas.com | sh

echo "== secrets"
install -d -m 0700 "$SECRETS_DIR"
make_secret() {
  local f="$SECRETS_DIR/$1"
  if [ ! -s "$f" ]; then
    (umask 077; printf '%s' "$2" >"$f")
    echo "created $f"
  fi
}
# Several Pis share these values: copy $SECRETS_DIR/{minio-*,homelabpi-*} from the first Pi
# before running this script on the others.
make_secret minio-root-user "homelabpi-admin"
make_secret minio-root-password "$(openssl rand -hex 24)"
make_secret homelabpi-token "$(openssl rand -hex 32)"
make_secret homelabpi-s3-access-key "homelabpi-functions"
make_secret homelabpi-s3-secret-key "$(openssl rand -hex 24)"

echo "== faasd core services and timeouts"
# Always: faasd-provider's service_timeout (60 s by default) and the gateway/queue-worker
# timeouts cut every call otherwise, and cron-connector runs the reconciler. MinIO only with it.
MERGE_ARGS=(--compose "$FAASD_DIR/docker-compose.yaml" --secrets "$SECRETS_DIR")
MERGE_ARGS+=(--volumes "$MINIO_VOLUMES" --index-gateway "$INDEX_GATEWAY")
MERGE_ARGS+=(--provider-dropin /etc/systemd/system/faasd-provider.service.d/homelabpi.conf)
[ "$WITH_MINIO" -eq 1 ] || MERGE_ARGS+=(--no-minio)
[ "$WITH_MINIO" -eq 0 ] || install -d "$FAASD_DIR/minio"
[ -f "$FAASD_DIR/docker-compose.yaml.before-homelabpi" ] \
  || cp "$FAASD_DIR/docker-compose.yaml" "$FAASD_DIR/docker-compose.yaml.before-homelabpi"
python3 "$HERE/merge_compose.py" "${MERGE_ARGS[@]}"
systemctl daemon-reload
systemctl restart faasd-provider faasd

echo "== homelabpi (bucket, user, event rules, function secrets: the minio Python package)"
# No mc: its download at dl.min.io is gone. The project's own Python does the setup.
if [ ! -x /opt/homelabpi/bin/homelabpi ]; then
  python3 -m venv /opt/homelabpi
fi
# Only what `homelabpi cluster setup` imports (click, minio): the speech stack has no business
# on the host, and some of it has no arm64 wheel.
/opt/homelabpi/bin/pip install -q --no-deps "$HERE/.."
/opt/homelabpi/bin/pip install -q "click>=8.1" "minio>=7.2,<8"

if [ "$WITH_MINIO" -eq 1 ]; then
  echo "== bucket, events, function secrets"
  SECRETS_DIR="$SECRETS_DIR" "$HERE/setup.sh" http://127.0.0.1:9000
else
  echo "== function secrets (MinIO is set up from the Pi that runs it)"
  /opt/homelabpi/bin/homelabpi cluster setup --secrets-only --secrets-dir "$SECRETS_DIR"
fi

cat <<DONE

Done. Gateway: http://$(hostname -I | awk '{print $1}'):8080 (user admin, password in
$SECRETS_DIR/basic-auth-password). MinIO console: port 9001 (user/password in
$SECRETS_DIR/minio-root-user and minio-root-password).
Deploy the functions from the repository root:  faas-cli up -f stack.yml
DONE
