"""Bearer tokens for function calls and MinIO webhooks.

On faasd a token is an OpenFaaS secret, mounted at `/var/openfaas/secrets/<name>`. Tests and the
embedded default may set `HOMELABPI_SECRETS_DIR` or `HOMELABPI_TOKEN_<NAME>` instead. When no token
is configured at all the check is off: the embedded gateway listens on loopback only.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from homelabpi.errors import Unauthorized

log = logging.getLogger(__name__)
SECRETS_DIR = "/var/openfaas/secrets"
FUNCTION_TOKEN = "homelabpi-token"


def read_secret(name: str) -> str | None:
    """A secret's value from the environment override or the mounted secrets directory."""
    env = os.environ.get("HOMELABPI_TOKEN_" + name.upper().replace("-", "_"))
    if env:
        return env.strip()
    path = Path(os.environ.get("HOMELABPI_SECRETS_DIR", SECRETS_DIR)) / name
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def require_token(headers: Mapping[str, str], secret_name: str = FUNCTION_TOKEN) -> None:
    """Raise Unauthorized unless `Authorization: Bearer <token>` matches the secret."""
    expected = read_secret(secret_name)
    if expected is None:
        return
    supplied = headers.get("Authorization") or headers.get("authorization") or ""
    scheme, _, token = supplied.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(),
                                                             expected.encode()):
        log.warning("rejected a call without a valid bearer token")
        raise Unauthorized("unauthorized")


def auth_header(secret_name: str = FUNCTION_TOKEN) -> dict[str, str]:
    """The header a caller (CLI, bot, gateway worker) adds, or nothing when auth is off."""
    token = read_secret(secret_name)
    return {"Authorization": f"Bearer {token}"} if token else {}
