#!/usr/bin/env bash
# One-shot HomeLabPi setup against a running MinIO and faasd (safe to run again).
#
#   sudo ./setup.sh [MINIO_URL]        # default http://127.0.0.1:9000
#
# Creates the bucket and its prefixes, a MinIO user for the functions (not the root user), the
# bucket-event rules that route uploads to the functions, and the OpenFaaS secrets the functions
# read. Rules mirror homelabpi.events.ROUTES:
#   audio/ put        -> TRANSCRIBE webhook (gateway /async-function/transcribe)
#   transcripts/ put  -> INDEX webhook      (gateway /async-function/index)
#   queries/ put      -> INDEX webhook
#   transcripts/ delete -> INDEX webhook    (a removed transcript leaves the index)
set -euo pipefail

MINIO_URL="${1:-${MINIO_URL:-http://127.0.0.1:9000}}"
SECRETS_DIR="${SECRETS_DIR:-/var/lib/faasd/secrets}"
BUCKET="${HOMELABPI_S3_BUCKET:-homelabpi}"
ALIAS="homelabpi"
APP_USER="homelabpi-functions"
TRANSCRIBE_ARN="arn:minio:sqs::TRANSCRIBE:webhook"
INDEX_ARN="arn:minio:sqs::INDEX:webhook"

die() { echo "setup.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed (install.sh installs it)"; }
secret() {
  local f="$SECRETS_DIR/$1"
  [ -s "$f" ] || die "missing $f (install.sh creates it)"
  tr -d '\n' <"$f"
}

need mc
need faas-cli

root_user="$(secret minio-root-user)"
root_password="$(secret minio-root-password)"
token="$(secret homelabpi-token)"
app_secret="$(secret homelabpi-s3-secret-key)"

echo "waiting for MinIO at $MINIO_URL ..."
for _ in $(seq 1 60); do
  if mc alias set "$ALIAS" "$MINIO_URL" "$root_user" "$root_password" >/dev/null 2>&1; then
    break
  fi
  sleep 2
done
mc admin info "$ALIAS" >/dev/null || die "MinIO at $MINIO_URL did not come up"

mc mb --ignore-existing "$ALIAS/$BUCKET"
# S3 has no directories; an empty marker under each prefix makes them visible in the console.
for prefix in audio transcripts queries index models; do
  if ! mc stat "$ALIAS/$BUCKET/$prefix/.keep" >/dev/null 2>&1; then
    printf '' | mc pipe "$ALIAS/$BUCKET/$prefix/.keep" >/dev/null
  fi
done

# The functions' own credentials: read/write on this bucket only.
policy_file="$(mktemp)"
trap 'rm -f "$policy_file"' EXIT
cat >"$policy_file" <<POLICY
{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:ListBucket"],
     "Resource": ["arn:aws:s3:::$BUCKET"]},
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
     "Resource": ["arn:aws:s3:::$BUCKET/*"]}
  ]
}
POLICY
mc admin policy create "$ALIAS" homelabpi-rw "$policy_file"
mc admin user add "$ALIAS" "$APP_USER" "$app_secret"
mc admin policy attach "$ALIAS" homelabpi-rw --user "$APP_USER" >/dev/null 2>&1 || true

# Event rules (remove first so a re-run does not stack duplicates).
mc event remove "$ALIAS/$BUCKET" --force >/dev/null 2>&1 || true
mc event add "$ALIAS/$BUCKET" "$TRANSCRIBE_ARN" --event put --prefix audio/
mc event add "$ALIAS/$BUCKET" "$INDEX_ARN" --event put --prefix transcripts/
mc event add "$ALIAS/$BUCKET" "$INDEX_ARN" --event put --prefix queries/
mc event add "$ALIAS/$BUCKET" "$INDEX_ARN" --event delete --prefix transcripts/
mc event ls "$ALIAS/$BUCKET"

# OpenFaaS secrets, mounted in each function at /var/openfaas/secrets/<name>.
faas-cli login --gateway "${OPENFAAS_URL:-http://127.0.0.1:8080}" --username admin \
  --password-stdin <"$SECRETS_DIR/basic-auth-password" >/dev/null
for name in homelabpi-token homelabpi-s3-access-key homelabpi-s3-secret-key; do
  case "$name" in
    homelabpi-token) value="$token" ;;
    homelabpi-s3-access-key) value="$APP_USER" ;;
    homelabpi-s3-secret-key) value="$app_secret" ;;
  esac
  printf '%s' "$value" | faas-cli secret create "$name" --replace >/dev/null
  echo "secret $name: ok"
done

echo "HomeLabPi storage is ready: bucket $BUCKET at $MINIO_URL (console on port 9001)."
echo "Next: faas-cli deploy -f stack.yml (or faas-cli up) from the repository root."
