"""`homelabpi cluster setup`: the bucket, the functions' MinIO user, event rules and secrets.

Done with the `minio` package's `Minio` and `MinioAdmin` (the `mc` download at dl.min.io is
gone), every step an upsert, so running it again changes nothing:

- the bucket, and an empty `.keep` under each prefix so the console shows them;
- a policy allowing the functions read/write on this bucket only, a user with it attached
  (MinIO admin API: add-canned-policy, add-user, idp/builtin/policy/attach);
- the bucket notification rules of `homelabpi.events.ROUTES`, each to its webhook target
  (`arn:minio:sqs::<ID>:webhook`, configured by MINIO_NOTIFY_WEBHOOK_*_<ID> in
  faasd/docker-compose.minio.yaml). PutBucketNotification replaces the whole set, so rules
  never stack up;
- the OpenFaaS secrets every function names in stack.yml, written where faasd's provider
  keeps them (openfaas/faasd pkg/provider/handlers/secret.go: `<secrets>/openfaas-fn/<name>`,
  mode 0644 so the function's non-root user can read the bind mount). faasd refuses a deploy
  naming a secret that is not there (pkg/provider/handlers/deploy.go `validateSecrets`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from homelabpi.errors import BadInput
from homelabpi.events import ROUTES

log = logging.getLogger(__name__)

FUNCTION_SECRETS = ("homelabpi-token", "homelabpi-s3-access-key", "homelabpi-s3-secret-key")
PREFIXES = ("audio", "transcripts", "queries", "index", "models")
POLICY = "homelabpi-rw"
# Webhook target ids in faasd/docker-compose.minio.yaml, one per consuming function.
TARGETS = {"transcribe": "TRANSCRIBE", "index": "INDEX"}
EVENTS = {"created": "s3:ObjectCreated:*", "removed": "s3:ObjectRemoved:*"}
FAASD_NAMESPACE = "openfaas-fn"


class Admin(Protocol):
    """The `minio.MinioAdmin` methods setup uses (minio-py 7.2)."""

    def policy_add(self, policy_name: str, policy_file: str | None = None,
                   policy: dict | None = None) -> str: ...

    def user_add(self, access_key: str, secret_key: str) -> str: ...

    def attach_policy(self, policies: list[str], user: str | None = None,
                      group: str | None = None) -> str: ...


@dataclass
class Credentials:
    root_user: str
    root_password: str
    token: str
    app_user: str
    app_secret: str

    @classmethod
    def from_dir(cls, secrets_dir: Path) -> Credentials:
        """The files faasd/install.sh makes in /var/lib/faasd/secrets."""
        def read(name: str) -> str:
            path = secrets_dir / name
            try:
                value = path.read_text().strip()
            except OSError as exc:
                raise BadInput(f"missing secret file {path} ({exc.strerror}); faasd/install.sh "
                               "creates it, or pass --secrets-dir") from exc
            if not value:
                raise BadInput(f"secret file {path} is empty")
            return value

        return cls(read("minio-root-user"), read("minio-root-password"),
                   read("homelabpi-token"), read("homelabpi-s3-access-key"),
                   read("homelabpi-s3-secret-key"))


@dataclass
class Done:
    steps: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        log.info("%s", text)
        self.steps.append(text)


def bucket_policy(bucket: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:ListBucket"],
         "Resource": [f"arn:aws:s3:::{bucket}"]},
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
         "Resource": [f"arn:aws:s3:::{bucket}/*"]},
    ]}


def notification_config():
    """ROUTES as MinIO queue rules: one per (event kind, prefix)."""
    from minio.notificationconfig import NotificationConfig, PrefixFilterRule, QueueConfig

    rules = []
    for kind, table in ROUTES.items():
        for prefix, function in table.items():
            arn = f"arn:minio:sqs::{TARGETS[function]}:webhook"
            rules.append(QueueConfig(
                queue=arn, events=[EVENTS[kind]],
                config_id=f"{function}-{kind}-{prefix.strip('/')}",
                prefix_filter_rule=PrefixFilterRule(prefix)))
    return NotificationConfig(queue_config_list=rules)


def setup_storage(client, bucket: str, done: Done) -> None:
    """Bucket, prefix markers and event rules: the part any S3 endpoint can check."""
    import io

    if client.bucket_exists(bucket):
        done.add(f"bucket {bucket}: exists")
    else:
        client.make_bucket(bucket)
        done.add(f"bucket {bucket}: created")
    for prefix in PREFIXES:
        key = f"{prefix}/.keep"
        try:
            client.stat_object(bucket, key)
        except Exception:  # noqa: BLE001 - S3Error NoSuchKey: make the marker
            client.put_object(bucket, key, io.BytesIO(b""), 0)
    client.set_bucket_notification(bucket, notification_config())
    done.add(f"bucket {bucket}: {len(notification_config().queue_config_list)} event rules set")


def setup_user(admin: Admin, bucket: str, creds: Credentials, done: Done) -> None:
    """The functions' own user: read/write on this bucket only, never the root user."""
    from minio.error import MinioAdminException

    admin.policy_add(POLICY, policy=bucket_policy(bucket))
    admin.user_add(creds.app_user, creds.app_secret)
    try:
        admin.attach_policy([POLICY], user=creds.app_user)
    except MinioAdminException as exc:  # attaching an attached policy is an error in MinIO
        if "already" not in str(exc).lower():
            raise
    done.add(f"user {creds.app_user}: policy {POLICY} on {bucket}")


def write_function_secrets(secrets_dir: Path, creds: Credentials, done: Done) -> Path:
    target = secrets_dir / FAASD_NAMESPACE
    target.mkdir(mode=0o755, parents=True, exist_ok=True)
    values = {"homelabpi-token": creds.token, "homelabpi-s3-access-key": creds.app_user,
              "homelabpi-s3-secret-key": creds.app_secret}
    for name in FUNCTION_SECRETS:
        path = target / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(values[name])
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    done.add(f"function secrets: {', '.join(FUNCTION_SECRETS)} in {target}")
    return target


def run(endpoint: str, bucket: str, secrets_dir: Path, *, secure: bool = False,
        secrets_only: bool = False, make_client: Callable | None = None,
        make_admin: Callable | None = None) -> Done:
    """Everything, in order. `make_client`/`make_admin` exist for tests."""
    from minio import Minio
    from minio.credentials import StaticProvider

    from homelabpi.store.minio import split_endpoint

    creds = Credentials.from_dir(secrets_dir)
    if secrets_only:
        done = Done()
        write_function_secrets(secrets_dir, creds, done)
        return done
    host, secure = split_endpoint(endpoint, secure)
    client = (make_client or Minio)(host, access_key=creds.root_user,
                                    secret_key=creds.root_password, secure=secure)
    admin = (make_admin or _admin_factory())(
        host, StaticProvider(creds.root_user, creds.root_password), secure=secure)
    done = Done()
    setup_storage(client, bucket, done)
    setup_user(admin, bucket, creds, done)
    write_function_secrets(secrets_dir, creds, done)
    return done


def _admin_factory():
    from minio import MinioAdmin

    return MinioAdmin


def describe(config) -> list[dict]:
    """Rules as plain data (for tests and `--json`)."""
    return [{"arn": q.queue, "events": list(q.events),
             "prefix": q.prefix_filter_rule.value if q.prefix_filter_rule else ""}
            for q in config.queue_config_list]


def dumps(done: Done) -> str:
    return json.dumps({"steps": done.steps}, indent=2)
