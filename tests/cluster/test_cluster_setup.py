"""`homelabpi cluster setup` against a real S3 endpoint (moto) for what moto implements: the
bucket, the prefix markers and the notification rules, read back over the wire. MinIO's admin
API (users, policies) does not exist in moto: those calls go to a recorder that binds every
call to the installed `minio.MinioAdmin` method's real signature and holds MinIO's documented
rules (mc admin / madmin: a policy is a JSON document with Version and Statement; attaching a
policy that is already attached is an error, `XMinioAdminPolicyChangeAlreadyApplied`)."""

from __future__ import annotations

import inspect
import re
import stat
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from homelabpi.cluster import setup
from homelabpi.events import ROUTES

BUCKET = "homelabpi-setup"
ROOT = Path(__file__).resolve().parents[2]
# MinIO's valid event names (minio/minio internal/event/name.go) and the ARN shape it accepts for
# a rule: arn:minio:sqs:<region>:<target id>:webhook, the id one of the configured targets
# (internal/event/config.go validates each queue ARN against the target list and the region).
MINIO_EVENTS = {"s3:ObjectCreated:*", "s3:ObjectCreated:Put", "s3:ObjectRemoved:*",
                "s3:ObjectRemoved:Delete", "s3:ObjectAccessed:*"}
MINIO_ARN = re.compile(r"^arn:minio:sqs:(?P<region>[^:]*):(?P<id>[^:]+):webhook$")


def configured_targets() -> set[str]:
    env = yaml.safe_load((ROOT / "faasd" / "docker-compose.minio.yaml").read_text())
    return {m.group(1) for e in env["services"]["minio"]["environment"]
            if (m := re.match(r"MINIO_NOTIFY_WEBHOOK_ENABLE_([A-Z0-9_]+)=on$", e))}


class MinioRules:
    """Moto refuses non-AWS ARNs, so the rules go here: stored as PutBucketNotification does
    (the whole configuration replaced), checked as MinIO checks them."""

    def __init__(self) -> None:
        self.config = None

    def set(self, bucket, config) -> None:
        for q in config.queue_config_list:
            m = MINIO_ARN.match(q.queue)
            assert m and m.group("region") in ("", "us-east-1"), q.queue
            assert m.group("id") in configured_targets(), f"{q.queue}: no such webhook target"
            assert set(q.events) <= MINIO_EVENTS, q.events
            assert q.prefix_filter_rule is not None
        self.config = config


class RecordingAdmin:
    """Holds state like MinIO's IAM: policies by name, users with their attached policies."""

    def __init__(self, endpoint, credentials, secure=True, **_):
        from minio import MinioAdmin

        self._real = MinioAdmin
        self.endpoint, self.credentials, self.secure = endpoint, credentials, secure
        self.policies: dict[str, dict] = {}
        self.users: dict[str, dict] = {}

    def _check(self, name, *args, **kwargs):
        inspect.signature(getattr(self._real, name)).bind(self, *args, **kwargs)

    def policy_add(self, policy_name, policy_file=None, policy=None):
        self._check("policy_add", policy_name, policy_file=policy_file, policy=policy)
        assert policy is not None and {"Version", "Statement"} <= set(policy)
        self.policies[policy_name] = policy
        return ""

    def user_add(self, access_key, secret_key):
        self._check("user_add", access_key, secret_key)
        user = self.users.setdefault(access_key, {"policies": set()})
        user["secret"] = secret_key
        return ""

    def attach_policy(self, policies, user=None, group=None):
        from minio.error import MinioAdminException

        self._check("attach_policy", policies, user=user, group=group)
        assert user in self.users and all(p in self.policies for p in policies)
        if set(policies) <= self.users[user]["policies"]:
            raise MinioAdminException("400", '{"Code":"XMinioAdminPolicyChangeAlreadyApplied",'
                                      '"Message":"The specified policy change is already in '
                                      'effect."}')
        self.users[user]["policies"] |= set(policies)
        return ""


@pytest.fixture()
def secrets_dir(tmp_path):
    d = tmp_path / "secrets"
    d.mkdir()
    for name, value in [("minio-root-user", "testing-access"),
                        ("minio-root-password", "testing-secret"),
                        ("homelabpi-token", "tok-123"),
                        ("homelabpi-s3-access-key", "homelabpi-functions"),
                        ("homelabpi-s3-secret-key", "app-secret-456")]:
        (d / name).write_text(value + "\n")
    return d


def test_setup_is_complete_and_idempotent(s3, secrets_dir):
    from minio import Minio

    admins: list[RecordingAdmin] = []

    def make_admin(*a, **kw):
        admins.append(RecordingAdmin(*a, **kw))
        if len(admins) > 1:  # the same server: carry its state over
            admins[-1].policies, admins[-1].users = admins[0].policies, admins[0].users
        return admins[-1]

    rules = MinioRules()

    def make_client(*a, **kw):
        client = Minio(*a, **kw)
        client.set_bucket_notification = rules.set
        return client

    for _ in range(2):
        setup.run(s3.endpoint, BUCKET, secrets_dir, make_admin=make_admin,
                  make_client=make_client)

    client = Minio(s3.endpoint.split("://")[1], "testing-access", "testing-secret", secure=False)
    assert client.bucket_exists(BUCKET)
    keys = sorted(o.object_name for o in client.list_objects(BUCKET, recursive=True))
    assert keys == sorted(f"{p}/.keep" for p in setup.PREFIXES)
    # Exactly ROUTES, once each, after two runs.
    got = sorted((r["arn"], tuple(r["events"]), r["prefix"])
                 for r in setup.describe(rules.config))
    want = sorted((f"arn:minio:sqs::{setup.TARGETS[fn]}:webhook",
                   (setup.EVENTS[kind],), prefix)
                  for kind, table in ROUTES.items() for prefix, fn in table.items())
    assert got == want

    iam = admins[-1]
    assert iam.users["homelabpi-functions"] == {"secret": "app-secret-456",
                                                "policies": {setup.POLICY}}
    resources = {r for s in iam.policies[setup.POLICY]["Statement"] for r in s["Resource"]}
    assert resources == {f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"}

    fn_secrets = secrets_dir / "openfaas-fn"
    assert (fn_secrets / "homelabpi-token").read_text() == "tok-123"
    assert (fn_secrets / "homelabpi-s3-access-key").read_text() == "homelabpi-functions"
    assert stat.S_IMODE((fn_secrets / "homelabpi-s3-secret-key").stat().st_mode) == 0o644


def test_every_function_secret_is_written_before_deploy():
    # faasd refuses a deploy naming a secret missing from <secrets>/openfaas-fn.
    from faasd_model import deploy_secrets_ok

    stack = yaml.safe_load((Path(__file__).resolve().parents[2] / "stack.yml").read_text())
    for name, fn in stack["functions"].items():
        assert deploy_secrets_ok(fn.get("secrets", []), set(setup.FUNCTION_SECRETS)) is None, name


def test_missing_secret_file_is_a_named_error(tmp_path):
    from homelabpi.errors import BadInput

    with pytest.raises(BadInput, match="minio-root-user"):
        setup.run("http://127.0.0.1:9", BUCKET, tmp_path)


def test_cli_reports_each_step(s3, secrets_dir, monkeypatch):
    from minio import Minio

    from homelabpi.cli import main

    monkeypatch.setattr(setup, "_admin_factory", lambda: RecordingAdmin)
    monkeypatch.setattr(Minio, "set_bucket_notification", lambda self, b, c: MinioRules().set(b, c))
    result = CliRunner().invoke(main, ["cluster", "setup", "--endpoint", s3.endpoint,
                                       "--bucket", BUCKET, "--secrets-dir", str(secrets_dir)])
    assert result.exit_code == 0, result.output
    assert f"bucket {BUCKET}" in result.output and "function secrets" in result.output
