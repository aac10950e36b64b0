"""Webhook signatures: HMAC-SHA256 over "{timestamp}.{body}", and how a receiver checks one."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

from lockgate.decide.decision import canonical_json

SIGNATURE_HEADER = "X-Lockgate-Signature"
TIMESTAMP_HEADER = "X-Lockgate-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The `X-Lockgate-Signature` value: "sha256=" + hex HMAC-SHA256 over "{timestamp}.{body}"."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: str | bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> bool:
    """On the receiving side: True when `signature` (the `X-Lockgate-Signature` header) was
    made with `secret` over this `timestamp` (`X-Lockgate-Timestamp`) and this exact raw body,
    and the timestamp is within `tolerance_s` of now (a replayed old request fails)."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def payload_body(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes a webhook and a file line carry for a payload (canonical JSON)."""
    return canonical_json(dict(payload)).encode()
